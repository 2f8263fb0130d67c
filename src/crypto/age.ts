import { randomBytes } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { IntegrityError } from "../errors.js";
import { buildHeader, newFileKey, parseHeader, unwrapFileKey } from "./header.js";
import type { X25519Identity, X25519Recipient } from "./keys.js";
import {
  openSegments,
  PAYLOAD_NONCE_SIZE,
  payloadKey,
  segmentSpan,
  StreamOpener,
  StreamSealer,
} from "./stream.js";

// age v1 files on node:crypto: this module joins the header (header.ts) and the STREAM payload
// (stream.ts) into incremental encryptors/decryptors, Node Transform streams and one-shot calls.
// Output is byte-compatible with the `age` CLI and the age-encryption package, both ways.

/** Encrypts one age file incrementally: write `prefix` first, then what push/finish return. */
export class AgeEncryptor {
  /** Header and payload nonce: the first bytes of the file. */
  readonly prefix: Buffer;
  readonly headerLength: number;
  private readonly sealer: StreamSealer;

  constructor(recipients: readonly X25519Recipient[]) {
    const fileKey = newFileKey();
    const header = buildHeader(fileKey, recipients);
    const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
    this.prefix = Buffer.concat([header, nonce]);
    this.headerLength = header.length;
    this.sealer = new StreamSealer(payloadKey(fileKey, nonce));
  }

  push(plain: Uint8Array): Buffer[] {
    return this.sealer.push(plain);
  }

  finish(): Buffer[] {
    return this.sealer.finish();
  }
}

/** What opening a header gives: enough to decrypt any segment of the payload. */
export interface OpenedHeader {
  fileKey: Buffer;
  payloadKey: Buffer;
  /** Bytes of header; the payload nonce follows, then the first sealed segment. */
  headerLength: number;
  /** Offset of the first sealed segment in the file. */
  payloadOffset: number;
}

/**
 * Opens the header at the start of `prefix` (which must also hold the 16-byte payload nonce).
 * Returns undefined when more bytes are needed.
 */
export function openHeader(
  prefix: Uint8Array,
  identities: readonly X25519Identity[],
  object: string,
): OpenedHeader | undefined {
  const header = parseHeader(prefix, object);
  if (!header || prefix.length < header.length + PAYLOAD_NONCE_SIZE) return undefined;
  const fileKey = unwrapFileKey(header, identities, object);
  const nonce = prefix.subarray(header.length, header.length + PAYLOAD_NONCE_SIZE);
  return {
    fileKey,
    payloadKey: payloadKey(fileKey, nonce),
    headerLength: header.length,
    payloadOffset: header.length + PAYLOAD_NONCE_SIZE,
  };
}

/** Decrypts one age file incrementally. */
export class AgeDecryptor {
  private head: Buffer | undefined = Buffer.alloc(0);
  private opener: StreamOpener | undefined;
  opened: OpenedHeader | undefined;

  constructor(
    private readonly identities: readonly X25519Identity[],
    private readonly object: string,
  ) {}

  push(data: Uint8Array): Buffer[] {
    if (this.opener) return this.opener.push(data);
    // Parse straight from `data` when nothing is held back, so a one-shot call copies nothing.
    const head = this.head!.length === 0 ? data : Buffer.concat([this.head!, data]);
    const opened = openHeader(head, this.identities, this.object);
    if (!opened) {
      this.head = Buffer.from(head);
      return [];
    }
    this.opened = opened;
    this.opener = new StreamOpener(opened.payloadKey, this.object);
    this.head = undefined;
    return this.opener.push(head.subarray(opened.payloadOffset));
  }

  finish(): Buffer[] {
    if (!this.opener) {
      // Distinguish "cut inside the header" from "not an age file" (parseHeader throws that).
      if (this.head && this.head.length > 0) parseHeader(this.head, this.object);
      throw new IntegrityError(this.object, this.head?.length ? "age file truncated inside its header" : "empty file, not an age file");
    }
    return [this.opener.finish()];
  }
}

export function createEncryptStream(recipients: readonly X25519Recipient[]): Transform {
  const enc = new AgeEncryptor(recipients);
  let started = false;
  const start = (t: Transform): void => {
    if (!started) t.push(enc.prefix);
    started = true;
  };
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      start(this);
      for (const b of enc.push(chunk)) this.push(b);
      cb();
    },
    flush(cb: TransformCallback) {
      start(this);
      for (const b of enc.finish()) this.push(b);
      cb();
    },
  });
}

export function createDecryptStream(identities: readonly X25519Identity[], object: string): Transform {
  const dec = new AgeDecryptor(identities, object);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      try {
        for (const b of dec.push(chunk)) this.push(b);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        for (const b of dec.finish()) this.push(b);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

export function encrypt(plain: Uint8Array, recipients: readonly X25519Recipient[]): Buffer {
  const enc = new AgeEncryptor(recipients);
  return Buffer.concat([enc.prefix, ...enc.push(plain), ...enc.finish()]);
}

export function decrypt(file: Uint8Array, identities: readonly X25519Identity[], object: string): Buffer {
  const dec = new AgeDecryptor(identities, object);
  return Buffer.concat([...dec.push(file), ...dec.finish()]);
}

/**
 * A plan for reading plaintext [offset, offset + length) of an age file without reading the
 * rest: fetch `length` bytes at `offset` of the file (a ranged GET), then `open` them.
 */
export interface RangePlan {
  offset: number;
  length: number;
  open(sealed: Uint8Array): Buffer;
}

export function planRange(opened: OpenedHeader, offset: number, length: number, object: string): RangePlan {
  const span = segmentSpan(offset, length);
  return {
    offset: opened.payloadOffset + span.sealedOffset,
    length: span.sealedLength,
    open(sealed) {
      const plain = Buffer.concat(openSegments(opened.payloadKey, span.firstSegment, sealed, object));
      if (plain.length < span.skip + length) {
        throw new IntegrityError(object, `age payload ends before plaintext byte ${offset + length}`);
      }
      return plain.subarray(span.skip, span.skip + length);
    },
  };
}
