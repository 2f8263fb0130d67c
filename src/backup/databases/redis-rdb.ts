// `redis-cli --rdb -` (Redis 7.0) streams the RDB as the server sends it; a server doing
// diskless replication (the default) ends the transfer with a 40-byte random marker, which
// redis-cli strips from a file with ftruncate() but cannot take back from a pipe. Left in, the
// restored dump.rdb would carry 40 bytes of garbage after its checksum.

const MARK = 40;
/** An RDB ends with the EOF opcode 0xFF and an 8-byte checksum. */
const TRAILER = 9;

/** Passes `rdb` through, minus a trailing EOF marker if the stream ends with one. */
export async function* withoutEofMark(rdb: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  // The last MARK + TRAILER bytes are held back until the end shows whether a marker is there.
  const keep = MARK + TRAILER;
  let held = Buffer.alloc(0);
  for await (const piece of rdb) {
    held = Buffer.concat([held, piece]);
    if (held.length > keep) {
      yield held.subarray(0, held.length - keep);
      held = Buffer.from(held.subarray(held.length - keep));
    }
  }
  yield endOf(held);
}

/**
 * Without a marker, the 0xFF opcode is among the last 40 bytes, and it is no hex digit; with
 * one, the last 40 bytes are hex digits (the marker) and 0xFF sits just before the checksum.
 */
function endOf(held: Buffer): Buffer {
  if (held.length < MARK + TRAILER) return held;
  const tail = held.subarray(held.length - MARK).toString("latin1");
  const marked = /^[0-9a-f]+$/.test(tail) && held[held.length - MARK - TRAILER] === 0xff;
  return marked ? held.subarray(0, held.length - MARK) : held;
}
