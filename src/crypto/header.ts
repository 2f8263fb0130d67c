import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { IntegrityError, NoIdentityError } from "../errors.js";
import {
  rawPublicKey,
  recipientFromBytes,
  type X25519Identity,
  type X25519Recipient,
} from "./keys.js";

// The age v1 header (C2SP age spec): a version line, one stanza per recipient, and a MAC line.
//
//   age-encryption.org/v1
//   -> X25519 <base64 ephemeral share>
//   <base64 wrapped file key>
//   --- <base64 HMAC-SHA256 over everything up to and including "---">
//
// Base64 is RFC 4648 standard alphabet without padding; stanza bodies wrap at 64 columns and
// always end with a line shorter than 64 (possibly empty).

export const VERSION_LINE = "age-encryption.org/v1";
export const FILE_KEY_SIZE = 16;
const X25519_INFO = "age-encryption.org/v1/X25519";
const ZERO_NONCE = Buffer.alloc(12);
const BODY_COLUMNS = 64;
/** Refuse to buffer more than this looking for the end of a header. */
export const MAX_HEADER_SIZE = 1 << 20;

export interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

export interface ParsedHeader {
  stanzas: Stanza[];
  /** The header bytes the MAC covers: up to and including "---". */
  macInput: Buffer;
  mac: Buffer;
  /** Length of the whole header including the MAC line's newline. */
  length: number;
}

export function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, length));
}

export function encodeBase64(data: Uint8Array): string {
  return Buffer.from(data).toString("base64").replace(/=+$/, "");
}

/** Strict, canonical, unpadded base64 as the spec requires; anything else is a bad header. */
export function decodeBase64(s: string, object: string): Buffer {
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) {
    throw new IntegrityError(object, "malformed age header: invalid base64");
  }
  const out = Buffer.from(s, "base64");
  if (encodeBase64(out) !== s) throw new IntegrityError(object, "malformed age header: non-canonical base64");
  return out;
}

/** Builds the header for a fresh file key wrapped to every recipient. */
export function buildHeader(fileKey: Uint8Array, recipients: readonly X25519Recipient[]): Buffer {
  if (recipients.length === 0) throw new RangeError("at least one age recipient is needed");
  let text = `${VERSION_LINE}\n`;
  for (const r of recipients) text += encodeStanza(wrapX25519(fileKey, r));
  text += "---";
  const macInput = Buffer.from(text, "latin1");
  const mac = headerMac(fileKey, macInput);
  return Buffer.concat([macInput, Buffer.from(` ${encodeBase64(mac)}\n`, "latin1")]);
}

function encodeStanza(st: Stanza): string {
  const b64 = encodeBase64(st.body);
  let lines = "";
  // The body always ends with a short line: an empty one when its length is a multiple of 64.
  for (let i = 0; i <= b64.length; i += BODY_COLUMNS) lines += `${b64.slice(i, i + BODY_COLUMNS)}\n`;
  return `-> ${[st.type, ...st.args].join(" ")}\n${lines}`;
}

function headerMac(fileKey: Uint8Array, macInput: Uint8Array): Buffer {
  return createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header")).update(macInput).digest();
}

function wrapX25519(fileKey: Uint8Array, recipient: X25519Recipient): Stanza {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const share = rawPublicKey(publicKey);
  const shared = diffieHellman({ privateKey, publicKey: recipient.keyObject });
  const wrapKey = hkdf(shared, Buffer.concat([share, recipient.publicKey]), X25519_INFO);
  const c = createCipheriv("chacha20-poly1305", wrapKey, ZERO_NONCE, { authTagLength: 16 });
  const body = Buffer.concat([c.update(fileKey), c.final(), c.getAuthTag()]);
  return { type: "X25519", args: [encodeBase64(share)], body };
}

/**
 * Parses a header from the start of `buf`. Returns undefined when `buf` ends before the header
 * does (read more and call again); throws IntegrityError when the bytes cannot be a header.
 */
export function parseHeader(buf: Uint8Array, object: string): ParsedHeader | undefined {
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const nextLine = (): string | undefined => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) {
      if (data.length > MAX_HEADER_SIZE) throw new IntegrityError(object, "malformed age header: too long");
      return undefined;
    }
    const line = data.toString("latin1", pos, nl);
    pos = nl + 1;
    return line;
  };
  const bad = (what: string): never => {
    throw new IntegrityError(object, `malformed age header: ${what}`);
  };

  const version = nextLine();
  if (version === undefined) {
    // Say early that this is not age at all, instead of waiting for a newline that never comes.
    if (!Buffer.from(VERSION_LINE).subarray(0, data.length).equals(data.subarray(0, VERSION_LINE.length))) {
      bad("not an age file");
    }
    return undefined;
  }
  if (version !== VERSION_LINE) bad("not an age v1 file");

  const stanzas: Stanza[] = [];
  for (;;) {
    const lineStart = pos;
    const line = nextLine();
    if (line === undefined) return undefined;
    if (line.startsWith("--- ")) {
      const mac = decodeBase64(line.slice(4), object);
      if (mac.length !== 32) bad("MAC has the wrong length");
      if (stanzas.length === 0) bad("no recipient stanzas");
      return { stanzas, macInput: data.subarray(0, lineStart + 3), mac, length: pos };
    }
    if (!line.startsWith("-> ")) bad("expected a stanza or the MAC line");
    const args = line.slice(3).split(" ");
    if (args.some((a) => a === "" || !/^[\x21-\x7e]+$/.test(a))) bad("invalid stanza arguments");
    const [type, ...rest] = args as [string, ...string[]];
    let body = "";
    for (;;) {
      const bodyLine = nextLine();
      if (bodyLine === undefined) return undefined;
      if (bodyLine.length > BODY_COLUMNS) bad("stanza body line too long");
      body += bodyLine;
      if (bodyLine.length < BODY_COLUMNS) break;
    }
    stanzas.push({ type, args: rest, body: decodeBase64(body, object) });
  }
}

/**
 * Finds the file key with the first identity that opens an X25519 stanza, then checks the
 * header MAC with it. Stanzas of other types are skipped: they are for someone else.
 *
 * What a damaged header becomes: anything that does not parse, and a MAC that fails once a
 * stanza gave up the file key, is an IntegrityError. A header without any X25519 stanza is one
 * too: no key vaultik can hold opens it, so "wrong key" would send the user looking for one that
 * does not exist. A changed ephemeral share or wrapped key that still parses fails the AEAD
 * exactly as a stanza for another recipient does, so that alone is a NoIdentityError, whose
 * message says the header may be damaged.
 */
export function unwrapFileKey(
  header: ParsedHeader,
  identities: readonly X25519Identity[],
  object: string,
): Buffer {
  if (!header.stanzas.some((st) => st.type === "X25519")) {
    const types = [...new Set(header.stanzas.map((st) => st.type))].join(", ");
    throw new IntegrityError(object, `malformed age header: no X25519 recipient stanza (only ${types}): damaged, or not written by vaultik`);
  }
  for (const st of header.stanzas) {
    if (st.type !== "X25519") continue;
    if (st.args.length !== 1 || st.body.length !== FILE_KEY_SIZE + 16) {
      throw new IntegrityError(object, "malformed age header: invalid X25519 stanza");
    }
    const share = decodeBase64(st.args[0] as string, object);
    if (share.length !== 32) throw new IntegrityError(object, "malformed age header: invalid X25519 share");
    for (const id of identities) {
      const fileKey = tryUnwrapX25519(share, st.body, id, object);
      if (fileKey) {
        const expected = headerMac(fileKey, header.macInput);
        if (!timingSafeEqual(expected, header.mac)) {
          throw new IntegrityError(object, "age header MAC mismatch: the header was altered");
        }
        return fileKey;
      }
    }
  }
  throw new NoIdentityError(object);
}

function tryUnwrapX25519(
  share: Buffer,
  body: Buffer,
  id: X25519Identity,
  object: string,
): Buffer | undefined {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: id.privateKey, publicKey: recipientFromBytes(share).keyObject });
  } catch (cause) {
    // OpenSSL refuses low-order points (an all-zero shared secret), which the spec requires.
    throw new IntegrityError(object, "malformed age header: invalid X25519 share", { cause });
  }
  if (shared.every((b) => b === 0)) throw new IntegrityError(object, "malformed age header: low-order X25519 share");
  const wrapKey = hkdf(shared, Buffer.concat([share, id.publicKey]), X25519_INFO);
  const d = createDecipheriv("chacha20-poly1305", wrapKey, ZERO_NONCE, { authTagLength: 16 });
  d.setAuthTag(body.subarray(FILE_KEY_SIZE));
  const fileKey = d.update(body.subarray(0, FILE_KEY_SIZE));
  try {
    d.final();
  } catch {
    return undefined; // wrapped for another recipient
  }
  return fileKey;
}

export function newFileKey(): Buffer {
  return randomBytes(FILE_KEY_SIZE);
}
