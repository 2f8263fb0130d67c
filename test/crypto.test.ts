import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Decrypter, Encrypter } from "age-encryption";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDecryptStream,
  createEncryptStream,
  decrypt,
  encrypt,
  openHeader,
  planRange,
} from "../src/crypto/age.js";
import {
  encodeIdentity,
  encodeRecipient,
  generateIdentity,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  rawPrivateKey,
} from "../src/crypto/keys.js";
import { ConfigError, IntegrityError, NoIdentityError } from "../src/errors.js";
import { SEALED_SEGMENT_SIZE, SEGMENT_SIZE } from "../src/crypto/stream.js";

const SIZES = [0, 1, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 17, 1_000_003];
const RANDOM_SIZES = Array.from({ length: 3 }, () => Math.floor(Math.random() * 4 * 1024 * 1024));

const keys = await generateIdentity();
const identity = parseIdentity(keys.identity);
const recipient = parseRecipient(keys.recipient);
const other = await generateIdentity();

async function ageEncryptionDecrypt(file: Uint8Array, id: string): Promise<Uint8Array> {
  const d = new Decrypter();
  d.addIdentity(id);
  return d.decrypt(file, "uint8array");
}

async function ageEncryptionEncrypt(plain: Uint8Array, to: string): Promise<Uint8Array> {
  const e = new Encrypter();
  e.addRecipient(to);
  return e.encrypt(plain);
}

function ageCli(): string {
  try {
    return execFileSync("which", ["age"]).toString().trim();
  } catch {
    throw new Error("the `age` CLI is needed for interop tests: apt-get install -y age");
  }
}

describe("keys", () => {
  it("round-trips bech32 encodings with age-encryption's keys", () => {
    expect(encodeRecipient(recipient.publicKey)).toBe(keys.recipient);
    expect(encodeIdentity(rawPrivateKey(identity.privateKey))).toBe(keys.identity);
    expect(identity.publicKey.equals(recipient.publicKey)).toBe(true);
  });

  it("refuses a private key where a public key belongs, without echoing it", () => {
    const err = captureError(() => parseRecipient(keys.identity));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain("age_recipient");
    expect(err.message).toContain("private key");
    expect(err.message).not.toContain(keys.identity.slice(16));
  });

  it("refuses malformed keys naming the setting", () => {
    expect(() => parseRecipient("age1notakey")).toThrow(/age_recipient: not a valid age public key/);
    expect(() => parseIdentity(keys.recipient)).toThrow(/public key/);
    const bad = `${keys.identity.slice(0, -1)}${keys.identity.endsWith("Q") ? "P" : "Q"}`;
    const err = captureError(() => parseIdentity(bad));
    expect(err.message).toMatch(/not a valid age X25519 identity/);
    expect(err.message).not.toContain(bad.slice(16));
  });

  it("reads identity files with comments", () => {
    const text = `# created: now\n# public key: ${keys.recipient}\n${keys.identity}\n\n${other.identity}\n`;
    const ids = parseIdentityFile(text);
    expect(ids.map((i) => encodeRecipient(i.publicKey))).toEqual([keys.recipient, other.recipient]);
  });
});

describe("age interop with age-encryption", () => {
  for (const size of [...SIZES, ...RANDOM_SIZES]) {
    it(`ours → age-encryption and age-encryption → ours, ${size} bytes`, async () => {
      const plain = randomBytes(size);
      const ours = encrypt(plain, [recipient]);
      expect(Buffer.from(await ageEncryptionDecrypt(ours, keys.identity)).equals(plain)).toBe(true);
      const theirs = await ageEncryptionEncrypt(plain, keys.recipient);
      expect(decrypt(theirs, [identity], "theirs").equals(plain)).toBe(true);
    });
  }

  it("encrypts to several recipients, each can decrypt", async () => {
    const plain = randomBytes(70_000);
    const file = encrypt(plain, [parseRecipient(other.recipient), recipient]);
    expect(Buffer.from(await ageEncryptionDecrypt(file, other.identity)).equals(plain)).toBe(true);
    expect(decrypt(file, [identity], "f").equals(plain)).toBe(true);
  });

  it("streams: any write sizes give a file both sides decrypt", async () => {
    const plain = randomBytes(3 * SEGMENT_SIZE + 1234);
    const pieces: Buffer[] = [];
    for (let off = 0; off < plain.length; ) {
      const n = 1 + Math.floor(Math.random() * 100_000);
      pieces.push(plain.subarray(off, off + n));
      off += n;
    }
    const out: Buffer[] = [];
    await pipeline(Readable.from(pieces), createEncryptStream([recipient]), async function* (src) {
      for await (const b of src) out.push(b as Buffer);
    });
    const file = Buffer.concat(out);
    expect(Buffer.from(await ageEncryptionDecrypt(file, keys.identity)).equals(plain)).toBe(true);
    const back: Buffer[] = [];
    const odd = Array.from({ length: Math.ceil(file.length / 777) }, (_, i) => file.subarray(i * 777, (i + 1) * 777));
    await pipeline(Readable.from(odd), createDecryptStream([identity], "stream"), async function* (src) {
      for await (const b of src) back.push(b as Buffer);
    });
    expect(Buffer.concat(back).equals(plain)).toBe(true);
  });
});

describe("age interop with the age CLI", () => {
  // Made in beforeAll, not while collecting, so afterAll always removes it (it holds a private key).
  let dir: string;
  let keyFile: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "vaultik-age-"));
    keyFile = join(dir, "key.txt");
    writeFileSync(keyFile, `${keys.identity}\n`, { mode: 0o600 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  for (const size of [0, 1, 65535, 65536, 65537, ...RANDOM_SIZES]) {
    it(`age -d reads ours and we read age -e, ${size} bytes`, () => {
      const age = ageCli();
      const plain = randomBytes(size);
      const oursPath = join(dir, `ours-${size}.age`);
      writeFileSync(oursPath, encrypt(plain, [recipient]));
      const out = execFileSync(age, ["-d", "-i", keyFile, oursPath], { maxBuffer: 1 << 30 });
      expect(out.equals(plain)).toBe(true);
      const plainPath = join(dir, `plain-${size}`);
      writeFileSync(plainPath, plain);
      const theirs = execFileSync(age, ["-e", "-r", keys.recipient, plainPath], { maxBuffer: 1 << 30 });
      expect(decrypt(theirs, [identity], "age-cli").equals(plain)).toBe(true);
    });
  }

  it("age -d rejects our file for another key, and so do we for theirs", () => {
    const age = ageCli();
    const path = join(dir, "other.age");
    writeFileSync(path, encrypt(Buffer.from("x"), [parseRecipient(other.recipient)]));
    expect(() => execFileSync(age, ["-d", "-i", keyFile, path], { stdio: "pipe" })).toThrow();
    const err = captureError(() => decrypt(readFileSync(path), [identity], "blobs/aa/bb/other"));
    expect(err).toBeInstanceOf(NoIdentityError);
    expect(err.message).toContain("blobs/aa/bb/other");
    expect(err.message).toContain("no identity matches");
  });
});

describe("range decryption", () => {
  it("returns exactly the plaintext bytes of every range", () => {
    const plain = randomBytes(5 * SEGMENT_SIZE + 999);
    const file = encrypt(plain, [recipient]);
    const opened = openHeader(file.subarray(0, 4096), [identity], "f");
    if (!opened) throw new Error("header did not fit 4 KiB");
    const ranges: Array<[number, number]> = [
      [0, 1],
      [0, SEGMENT_SIZE],
      [SEGMENT_SIZE - 1, 2],
      [SEGMENT_SIZE, SEGMENT_SIZE],
      [3 * SEGMENT_SIZE + 5, 2 * SEGMENT_SIZE - 5],
      [plain.length - 1, 1],
      [0, plain.length],
      [plain.length - 1000, 1000],
    ];
    for (let i = 0; i < 50; i++) {
      const off = Math.floor(Math.random() * plain.length);
      ranges.push([off, 1 + Math.floor(Math.random() * (plain.length - off))]);
    }
    for (const [off, len] of ranges) {
      const plan = planRange(opened, off, len, "f");
      const got = plan.open(file.subarray(plan.offset, plan.offset + plan.length));
      expect(got.equals(plain.subarray(off, off + len)), `range ${off}+${len}`).toBe(true);
    }
  });

  it("reads ranges of files written by age-encryption", async () => {
    const plain = randomBytes(2 * SEGMENT_SIZE + 10);
    const file = await ageEncryptionEncrypt(plain, keys.recipient);
    const opened = openHeader(file, [identity], "theirs");
    if (!opened) throw new Error("no header");
    const plan = planRange(opened, SEGMENT_SIZE - 3, SEGMENT_SIZE + 8, "theirs");
    const got = plan.open(file.subarray(plan.offset, plan.offset + plan.length));
    expect(got.equals(plain.subarray(SEGMENT_SIZE - 3, 2 * SEGMENT_SIZE + 5))).toBe(true);
  });

  it("rejects a tampered segment and a range past the end", () => {
    const plain = randomBytes(3 * SEGMENT_SIZE);
    const file = Buffer.from(encrypt(plain, [recipient]));
    const opened = openHeader(file, [identity], "blob-x");
    if (!opened) throw new Error("no header");
    const plan = planRange(opened, SEGMENT_SIZE + 10, 10, "blob-x");
    file[plan.offset + 100]! ^= 0x01;
    expect(() => plan.open(file.subarray(plan.offset, plan.offset + plan.length))).toThrow(/blob-x: .*authentication failed/);
    const past = planRange(opened, 3 * SEGMENT_SIZE - 5, 10, "blob-x");
    expect(() => past.open(file.subarray(past.offset, past.offset + past.length))).toThrow(/blob-x: age payload ends before/);
  });
});

describe("corruption and truncation", () => {
  it("every single flipped bit of a small file is an integrity error naming the object", () => {
    const plain = randomBytes(300);
    const file = encrypt(plain, [recipient]);
    for (let bit = 0; bit < file.length * 8; bit++) {
      const bad = Buffer.from(file);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const err = captureError(() => decrypt(bad, [identity], "blobs/12/34/1234abcd"));
      expect(err, `bit ${bit}`).toBeInstanceOf(IntegrityError);
      expect(err.message).toContain("blobs/12/34/1234abcd");
    }
  });

  it("flipped bits in a multi-segment file: every segment, tag and nonce", () => {
    const file = encrypt(randomBytes(3 * SEGMENT_SIZE + 5), [recipient]);
    const opened = openHeader(file, [identity], "o");
    if (!opened) throw new Error("no header");
    const positions = [opened.headerLength + 3, opened.payloadOffset, opened.payloadOffset + SEALED_SEGMENT_SIZE - 1];
    for (let i = 0; i < 40; i++) positions.push(opened.payloadOffset + Math.floor(Math.random() * (file.length - opened.payloadOffset)));
    for (const pos of positions) {
      const bad = Buffer.from(file);
      bad[pos]! ^= 0x80;
      expect(() => decrypt(bad, [identity], "blob-9"), `byte ${pos}`).toThrow(/blob-9: .*(authentication failed|truncated)/);
    }
  });

  it("a file cut anywhere is rejected, and a cut on a segment boundary says truncated", () => {
    const file = encrypt(randomBytes(3 * SEGMENT_SIZE + 100), [recipient]);
    const opened = openHeader(file, [identity], "o");
    if (!opened) throw new Error("no header");
    const cuts = [0, 10, opened.headerLength - 1, opened.headerLength, opened.payloadOffset];
    for (let s = 1; s <= 3; s++) cuts.push(opened.payloadOffset + s * SEALED_SEGMENT_SIZE);
    for (let i = 0; i < 30; i++) cuts.push(Math.floor(Math.random() * file.length));
    for (const cut of cuts) {
      const err = captureError(() => decrypt(file.subarray(0, cut), [identity], "blob-t"));
      expect(err, `cut at ${cut}`).toBeInstanceOf(IntegrityError);
      expect(err.message).toContain("blob-t");
    }
    for (let s = 1; s <= 3; s++) {
      const cut = opened.payloadOffset + s * SEALED_SEGMENT_SIZE;
      expect(() => decrypt(file.subarray(0, cut), [identity], "blob-t")).toThrow(/truncated/);
    }
  });

  it("appended bytes are rejected", () => {
    const file = encrypt(randomBytes(1000), [recipient]);
    expect(() => decrypt(Buffer.concat([file, Buffer.from("x")]), [identity], "b")).toThrow(IntegrityError);
  });

  it("a non-age object says so", () => {
    expect(() => decrypt(Buffer.from("hello world\n"), [identity], "index/x")).toThrow(/index\/x: malformed age header: not an age/);
  });
});

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error");
}
