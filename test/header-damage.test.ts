import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver } from "./helpers/s3rver.js";
import { blobKey } from "../src/repo/layout.js";
import { backupId, cliKeys, localRepo, storedBlobs, type LocalRepo } from "./helpers/setup.js";

// A damaged age header must not read as a wrong key (issue 14 item 5). The rule: a header that
// does not parse, or whose MAC fails once a stanza has given up the file key, is damage (exit 1,
// naming the object); only when no stanza opens with any identity given is it exit 12, and then
// the message says that the header may be damaged, since a damaged wrapped key and a wrong key
// cannot be told apart. Each case damages one byte of a real object, then puts it back.

let dir: string;
let r: LocalRepo;
let id: string;
let wrongKey: string;
let blobObject: string;
let blobPath: string;
let snapshotPath: string;
const file = () => join(r.source, "a.txt");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-header-"));
  r = await localRepo(dir, await cliKeys());
  await writeFile(file(), "the only file\n");
  id = await backupId(r);
  wrongKey = (await cliKeys()).identity;
  const blobs = await storedBlobs(r);
  expect(blobs).toHaveLength(1);
  blobObject = blobKey(blobs[0]!);
  blobPath = join(r.repo, blobObject);
  snapshotPath = join(r.repo, "index", `${id}.sqlite.zst.age`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Offsets of the header's parts: version, stanza line, wrapped key line, MAC line, payload nonce. */
function layout(bytes: Buffer): { stanza: number; body: number; mac: number; nonce: number } {
  const lines: number[] = [0];
  for (let i = 0; lines.length < 5; i++) if (bytes[i] === 0x0a) lines.push(i + 1);
  return { stanza: lines[1]!, body: lines[2]!, mac: lines[3]!, nonce: lines[4]! };
}

/** Another base64 character: the object stays a well-formed header with different bits. */
const otherBase64 = (c: number) => (c === 0x41 ? 0x42 : 0x41);

interface Case {
  name: string;
  damage(bytes: Buffer): void;
  right: { code: number; message: string };
  wrong: { code: number; message: string };
}

const noIdentity = { code: 12, message: "no identity matches any recipient stanza (wrong private key, or a damaged header)" };
const cases: Case[] = [
  {
    name: "version line",
    damage: (b) => void (b[4] = 0x58),
    right: { code: 1, message: "malformed age header: not an age v1 file" },
    wrong: { code: 1, message: "malformed age header: not an age v1 file" },
  },
  {
    // No key vaultik can hold opens a header without an X25519 stanza: not a wrong key.
    name: "stanza type",
    damage: (b) => void (b[layout(b).stanza + 3] = 0x59),
    right: { code: 1, message: "malformed age header: no X25519 recipient stanza (only Y25519)" },
    wrong: { code: 1, message: "malformed age header: no X25519 recipient stanza (only Y25519)" },
  },
  {
    name: "stanza argument (ephemeral share), still base64",
    damage: (b) => void (b[layout(b).stanza + 10] = otherBase64(b[layout(b).stanza + 10]!)),
    right: noIdentity,
    wrong: noIdentity,
  },
  {
    name: "stanza argument (ephemeral share), not base64",
    damage: (b) => void (b[layout(b).stanza + 10] = 0x2a),
    right: { code: 1, message: "malformed age header: invalid base64" },
    wrong: { code: 1, message: "malformed age header: invalid base64" },
  },
  {
    name: "wrapped file key",
    damage: (b) => void (b[layout(b).body] = otherBase64(b[layout(b).body]!)),
    right: noIdentity,
    wrong: noIdentity,
  },
  {
    name: "MAC line",
    damage: (b) => void (b[layout(b).mac + 4] = otherBase64(b[layout(b).mac + 4]!)),
    right: { code: 1, message: "age header MAC mismatch: the header was altered" },
    wrong: noIdentity,
  },
  {
    name: "payload nonce",
    damage: (b) => void (b[layout(b).nonce] = b[layout(b).nonce]! ^ 0xff),
    right: { code: 1, message: "age payload authentication failed in segment 0" },
    wrong: noIdentity,
  },
];

async function withDamage<T>(path: string, damage: (b: Buffer) => void, fn: () => Promise<T>): Promise<T> {
  const original = await readFile(path);
  const bytes = Buffer.from(original);
  damage(bytes);
  expect(bytes.equals(original)).toBe(false);
  await writeFile(path, bytes);
  try {
    return await fn();
  } finally {
    await writeFile(path, original);
  }
}

const withKey = (key: string) => ({ env: { VAULTIK_PRIVATE_KEY: key } });

describe("a damaged snapshot object header", () => {
  for (const c of cases) {
    it(`${c.name}: right key exit ${c.right.code}, wrong key exit ${c.wrong.code}, naming the object`, async () => {
      const object = `index/${id}.sqlite.zst.age`;
      await withDamage(snapshotPath, c.damage, async () => {
        for (const [key, want] of [[r.identity, c.right], [wrongKey, c.wrong]] as const) {
          const out = await vaultik(["fetch", r.repo, "", id, file(), "-"], withKey(key));
          expect(out.code, out.stderr).toBe(want.code);
          expect(out.stderr).toContain(`${object}: ${want.message}`);
        }
      });
    });
  }
});

describe("a damaged blob header, with the right key", () => {
  for (const c of cases) {
    it(`${c.name}: fetch (ranged reads) and check --read-data (whole blob) exit ${c.right.code}, naming the blob`, async () => {
      const object = blobObject;
      await withDamage(blobPath, c.damage, async () => {
        const fetched = await vaultik(["fetch", r.repo, "", id, file(), "-"], withKey(r.identity));
        expect(fetched.code, fetched.stderr).toBe(c.right.code);
        expect(fetched.stderr).toContain(`${object}: ${c.right.message}`);
        const checked = await vaultik(["check", r.repo, "", "--read-data"], withKey(r.identity));
        expect(checked.code, checked.stdout).toBe(1);
        expect(checked.stdout).toContain(`blob ${object.split("/").pop()}: ${object}: ${c.right.message}`);
      });
    });
  }

  it("with a wrong key the snapshot is what fails first: exit 12, naming it", async () => {
    await withDamage(blobPath, cases.find((c) => c.name === "MAC line")!.damage, async () => {
      const out = await vaultik(["fetch", r.repo, "", id, file(), "-"], withKey(wrongKey));
      expect(out.code).toBe(12);
      expect(out.stderr).toContain(`index/${id}.sqlite.zst.age: no identity matches`);
    });
  });

  it("an undamaged repository still fetches and checks clean (the cases above put every byte back)", async () => {
    const fetched = await vaultik(["fetch", r.repo, "", id, file(), "-"], withKey(r.identity));
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.stdout).toBe("the only file\n");
    const checked = await vaultik(["check", r.repo, "", "--read-data"], withKey(r.identity));
    expect(checked.code, checked.stdout).toBe(0);
  });
});

describe("served by S3 (s3rver)", () => {
  it("a damaged MAC line of the snapshot and of the blob: exit 1 naming each object; a wrong key: 12", async () => {
    const mac = cases.find((c) => c.name === "MAC line")!;
    const server = await startS3rver();
    try {
      const s3 = (key: string) => ({ env: { ...s3rverCliEnv(server), VAULTIK_PRIVATE_KEY: key } });
      const snapshotObject = `index/${id}.sqlite.zst.age`;
      await withDamage(snapshotPath, mac.damage, async () => {
        await mirrorToS3rver(r.repo, server, "snap");
      });
      for (const [key, want] of [[r.identity, mac.right], [wrongKey, mac.wrong]] as const) {
        const out = await vaultik(["fetch", server.bucket, "snap", id, file(), "-"], s3(key));
        expect(out.code, out.stderr).toBe(want.code);
        expect(out.stderr).toContain(`${snapshotObject}: ${want.message}`);
      }
      await withDamage(blobPath, mac.damage, async () => {
        await mirrorToS3rver(r.repo, server, "blob");
      });
      const fetched = await vaultik(["fetch", server.bucket, "blob", id, file(), "-"], s3(r.identity));
      expect(fetched.code, fetched.stderr).toBe(1);
      expect(fetched.stderr).toContain(`${blobObject}: ${mac.right.message}`);
    } finally {
      await server.close();
    }
  });
});
