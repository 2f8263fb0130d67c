import { once } from "node:events";
import type { Writable } from "node:stream";
import { pack, type Header, type Pack } from "tar-stream";
import type { X25519Identity } from "../crypto/keys.js";
import { errorMessage, type IntegrityError } from "../errors.js";
import { encodePath, hasRawBytes } from "../model/path-bytes.js";
import type { Repository } from "../repo/repository.js";
import type { EntryRow, SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";
import { TORN_FILE } from "./report.js";
import { checkStreamable, streamContent, writerTo, type ContentSource } from "./dump.js";

// A subtree of a snapshot as a tar stream (`vaultik dump … --archive tar`), written with
// tar-stream in path order. Member names are snapshot paths without the leading `/`, as restic
// writes them, so `tar -x` recreates the snapshot's layout; the dumped directory is a member
// itself (its mode and times come back), its parents are not. A file's content is streamed chunk
// by chunk into its member with backpressure, never held whole.
//
// tar-stream encodes names as UTF-8 strings, which cannot hold bytes that are not UTF-8 (they
// would become U+FFFD, the name of another file). Such a member gets a PAX extended header of
// our own, written just before it, with `hdrcharset=BINARY` and the exact bytes in `path` (and
// `linkpath`); tar-stream then writes the member under an ASCII stand-in name the PAX header
// overrides. The same header carries owner names or ids and times that a ustar header cannot.

export interface TarOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  snapshot: SnapshotReader;
  /** Snapshot path of the entry to dump ("" is the whole snapshot). */
  prefix: string;
  out: Writable;
  signal?: AbortSignal;
  /** An entry left out of the archive, and why (the dump goes on). */
  skipped: (path: string, message: string) => void;
  /** An entry written as recorded, but maybe not as the source had it (a file that changed while it was read). */
  warn: (path: string, message: string) => void;
}

const TYPES: Record<EntryRow["type"], Header["type"]> = {
  file: "file",
  dir: "directory",
  symlink: "symlink",
  fifo: "fifo",
  chardev: "character-device",
  blockdev: "block-device",
};

/** Writes the archive; returns how many entries were left out (each reported by `skipped`). */
export async function writeTar(o: TarOptions): Promise<number> {
  const tar = pack();
  const pump = copyOut(tar, o.out, o.signal);
  // A failing output (a closed pipe) stops the members being written too; handled here at once,
  // as the members may still be running when it fails.
  pump.catch((err: Error) => tar.destroy(err));
  try {
    const skipped = await addEntries(o, tar);
    tar.finalize();
    await pump;
    return skipped;
  } catch (err) {
    tar.destroy(err as Error);
    await pump.catch(() => {});
    throw err;
  }
}

async function copyOut(tar: Pack, out: Writable, signal?: AbortSignal): Promise<void> {
  const write = writerTo(out, signal);
  for await (const data of tar as AsyncIterable<Uint8Array>) await write(data);
}

async function addEntries(o: TarOptions, tar: Pack): Promise<number> {
  const { snapshot } = o;
  // Entries a restore would refuse; looked up once for the subtree, not once per file.
  const flawed = new Map<number, IntegrityError>();
  for (const f of snapshot.flaws(o.prefix)) if (!flawed.has(f.id)) flawed.set(f.id, f.error);
  const source: ContentSource = { repo: o.repo, reader: o.repo.blobReader(o.identities), snapshot, signal: o.signal };
  // The member name of each link set's first file in the archive, by set.
  const linkLeaders = new Map<number, string>();
  const pace = new Pace(o.signal);
  let skipped = 0;
  let stand = 0;
  for (const e of snapshot.entries(o.prefix)) {
    await pace.tick();
    // The root of a snapshot has no name a tar member could have.
    if (e.path === "") continue;
    const problem = flawed.get(e.id) ?? (e.type === "file" && !linkLeaders.has(e.linkId ?? -1) ? streamable(snapshot, e) : undefined);
    if (problem) {
      o.skipped(e.path, problem.message);
      skipped++;
      continue;
    }
    const leader = e.type === "file" && e.linkId !== null ? linkLeaders.get(e.linkId) : undefined;
    const header: Header = {
      // A directory's member name ends in "/" (tar-stream does not add it).
      name: e.type === "dir" ? `${e.path}/` : e.path,
      type: leader !== undefined ? "link" : TYPES[e.type],
      // tar-stream replaces a mode of 0 with 0644/0755; a type bit it masks off keeps 0 as 0.
      mode: (e.mode & 0o7777) | 0o100000,
      uid: e.uid,
      gid: e.gid,
      uname: e.userName ?? "",
      gname: e.groupName ?? "",
      mtime: new Date(Number(e.mtimeNs / 1_000_000n)),
      size: e.type === "file" && leader === undefined ? Number(e.size) : 0,
      linkname: leader ?? (e.type === "symlink" ? (e.linkTarget ?? "") : ""),
      devmajor: e.rdev === null ? 0 : major(e.rdev),
      devminor: e.rdev === null ? 0 : minor(e.rdev),
    };
    if (e.type === "file" && e.linkId !== null && leader === undefined) linkLeaders.set(e.linkId, header.name);
    if (e.status === "changed") o.warn(e.path, TORN_FILE);
    const pax = paxRecords(header, e);
    if (pax) {
      tar.push(paxBlock(pax));
      header.name = `vaultik-pax-member-${++stand}`;
      if (header.linkname) header.linkname = header.name;
      header.uname = header.uname && fitsUstar(header.uname) ? header.uname : "";
      header.gname = header.gname && fitsUstar(header.gname) ? header.gname : "";
      header.uid = Math.min(header.uid, USTAR_ID_MAX);
      header.gid = Math.min(header.gid, USTAR_ID_MAX);
      header.devmajor = Math.min(header.devmajor, USTAR_ID_MAX);
      header.devminor = Math.min(header.devminor, USTAR_ID_MAX);
      if (!inUstarTime(e.mtimeNs)) header.mtime = new Date(0);
    }
    await addMember(tar, header, header.size > 0 ? (write) => streamContent(source, e, write) : undefined, o.signal);
  }
  return skipped;
}

function streamable(snapshot: SnapshotReader, e: EntryRow): Error | undefined {
  try {
    checkStreamable(snapshot, e);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err : new Error(errorMessage(err));
  }
}

/** Adds one member and waits until tar-stream is done with it, so the next one (or a PAX block) follows it. */
async function addMember(tar: Pack, header: Header, content: ((write: (d: Uint8Array) => Promise<void>) => Promise<number>) | undefined, signal?: AbortSignal): Promise<void> {
  let settle: (err?: Error | null) => void = () => {};
  const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
  // Awaited below, unless writing the content failed first: then the caller's error is the one.
  done.catch(() => {});
  const sink = tar.entry(header, (err) => settle(err));
  // A failure reaches the callback too; without a listener it would also be thrown as an 'error' event.
  sink.on("error", (err: Error) => settle(err));
  if (content) {
    const written = await content(async (data) => {
      if (!sink.write(data)) await once(sink as unknown as NodeJS.EventEmitter, "drain", { signal });
    });
    // streamContent writes the recorded size or throws; tar-stream refuses a short member too.
    if (written !== header.size) throw new Error(`tar member ${header.name}: ${written} bytes for a header of ${header.size}`);
  }
  // A regular file's member (an empty one too) is done when its stream ends; others at once.
  if (header.type === "file") (sink as unknown as { end(): void }).end();
  await done;
}

/** What tar-stream's 6-digit octal fields hold (uid, gid, device numbers). */
const USTAR_ID_MAX = 0o777777;
const fitsUstar = (s: string) => /^[\x20-\x7e]{0,31}$/.test(s);
/** Seconds a ustar header (and tar-stream's 32-bit arithmetic) carries as they are. */
const inUstarTime = (ns: bigint) => ns >= 0n && ns < 2n ** 31n * 1_000_000_000n;

/**
 * PAX records (key, value bytes) for what tar-stream cannot write exactly: names or link
 * targets that are not UTF-8, owner names that do not fit, ids and times out of ustar's range.
 * Undefined when a plain header holds everything.
 */
function paxRecords(h: Header, e: EntryRow): [string, Buffer][] | undefined {
  const raw = hasRawBytes(h.name) || (h.linkname !== "" && hasRawBytes(h.linkname));
  const owners = !fitsUstar(h.uname) || !fitsUstar(h.gname) || h.uid > USTAR_ID_MAX || h.gid > USTAR_ID_MAX;
  const device = h.devmajor > USTAR_ID_MAX || h.devminor > USTAR_ID_MAX;
  if (!raw && !owners && !device && inUstarTime(e.mtimeNs)) return undefined;
  const records: [string, Buffer][] = [
    ["hdrcharset", Buffer.from("BINARY")],
    ["path", encodePath(h.name)],
  ];
  if (h.linkname !== "") records.push(["linkpath", encodePath(h.linkname)]);
  if (h.uname !== "") records.push(["uname", Buffer.from(h.uname)]);
  if (h.gname !== "") records.push(["gname", Buffer.from(h.gname)]);
  records.push(["uid", Buffer.from(String(h.uid))], ["gid", Buffer.from(String(h.gid))], ["mtime", Buffer.from(paxTime(e.mtimeNs))]);
  // star's keywords, which GNU tar and libarchive read.
  if (device) records.push(["SCHILY.devmajor", Buffer.from(String(h.devmajor))], ["SCHILY.devminor", Buffer.from(String(h.devminor))]);
  return records;
}

function paxTime(ns: bigint): string {
  const sign = ns < 0n ? "-" : "";
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, "0")}`;
}

/** A PAX extended header member ('x'): its ustar header block and its records, padded to 512. */
function paxBlock(records: readonly [string, Buffer][]): Buffer {
  const lines = records.map(([key, value]) => {
    const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
    // The length prefix counts itself.
    let n = body.length + 1;
    while (String(n).length + body.length !== n) n = String(n).length + body.length;
    return Buffer.concat([Buffer.from(String(n)), body]);
  });
  const data = Buffer.concat(lines);
  const header = Buffer.alloc(512);
  header.write("PaxHeader", 0, "ascii");
  header.write("0000644\0", 100, "ascii");
  header.write("0000000\0", 108, "ascii");
  header.write("0000000\0", 116, "ascii");
  header.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124, "ascii");
  header.write("00000000000\0", 136, "ascii");
  header.write("x", 156, "ascii");
  header.write("ustar\x0000", 257, "ascii");
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return Buffer.concat([header, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** Linux's device number split (glibc's major()/minor()). */
function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}
