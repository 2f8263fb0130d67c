import { request, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { extract } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Repository } from "../src/repo/repository.js";
import { CSP, type Auth } from "../src/serve/http.js";
import { openFsStore } from "../src/store/fs.js";
import { openS3Store } from "../src/store/s3.js";
import { vaultik } from "./helpers/cli.js";
import { s3rverMirroring, s3rverStoreOptions, type S3rverHandle } from "./helpers/s3rver.js";
import { HOUR, makeFleet3, startFleetServer, type Fleet3 } from "./helpers/serve-fleet.js";

// Issue 18 items 2, 4, 5: every endpoint of docs/SERVE.md answers with what the repository
// really holds (3 hosts: one stale, one with an abandoned run), on a directory store and on
// s3rver (the same objects), with the security headers on every response and no secret in any.

let fx: Fleet3;
let s3: S3rverHandle;
let checkRoot: string;

beforeAll(async () => {
  fx = await makeFleet3("retention:\n  keep_last: 1\nserve:\n  hosts:\n    gamma:\n      stale_after: 12h\n");
  checkRoot = join(fx.dir, "cache");
  s3 = await s3rverMirroring(fx.r.repo, "mirror");
  // A run's times are its markers' store times, and s3rver stamps each object with the moment it
  // was copied: which of gamma's runs is newest then depends on the copy's order (on one loaded
  // core its finished backup came out newest). Written again after the copy, the dead run is
  // the newest on this store too, as on the directory store.
  const mirror = openS3Store(s3rverStoreOptions(s3, "mirror"));
  for await (const o of mirror.list("runs/")) if (o.key.includes(fx.ids.abandoned)) await mirror.delete(o.key);
  await new Repository(mirror).beat(fx.ids.abandoned, fx.made);
}, 120_000);

afterAll(async () => {
  await s3?.close();
  await fx?.cleanup();
});

/** The source file's path as the API shows it. */
const shown = (p: string) => `${fx.r.source}/${p}`;

const serveFleet = (repo: Repository, auth?: Auth) => startFleetServer(fx, repo, { auth, checkRoot });

describe.each([
  ["directory", () => new Repository(openFsStore(fx.r.repo))],
  ["s3rver", () => new Repository(openS3Store(s3rverStoreOptions(s3, "mirror")))],
])("vaultik serve API on the %s store", (kind, makeRepo) => {
  let served: Awaited<ReturnType<typeof serveFleet>>;
  let base: string;
  const get = (path: string, init?: RequestInit) => fetch(new URL(path, base), init);
  const json = async (path: string) => {
    const res = await get(path);
    expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    return (await res.json()) as Record<string, any>;
  };
  const snap = (id: string, rest = "") => `/api/repos/main/snapshots/${id}${rest}`;

  beforeAll(async () => {
    served = await serveFleet(makeRepo());
    base = served.server.url;
  }, 60_000);
  afterAll(async () => served?.close());

  it("overview: 3 hosts, the stale one first, then the abandoned run, with real sizes", async () => {
    const o = await json("/api/overview");
    expect(o.hosts.map((h: any) => [h.host, h.status, h.lastRun?.state])).toEqual([
      ["beta", "stale", "finished"],
      ["gamma", "ok", "abandoned"],
      ["alpha", "ok", "finished"],
    ]);
    const alpha = o.hosts[2];
    const size = Object.values(fx.files).reduce((n, b) => n + b.length, 0);
    expect(alpha.latest).toMatchObject({ id: fx.ids.a2, size, files: 4, ageSeconds: 3 * 3600 });
    expect(alpha.latest.newBytes).toBeGreaterThan(0);
    // Only conf.ini and new.txt are new: far less than the 300 kB file both snapshots share.
    expect(alpha.latest.newBytes).toBeLessThan(10_000);
    expect(alpha.snapshots).toBe(2);
    expect(o.hosts[1]).toMatchObject({ staleAfterSeconds: 12 * 3600, lastRun: { id: fx.ids.abandoned } });
    expect(o.hosts[0].latest.ageSeconds).toBe(242 * 3600);
    expect(o.repositories).toEqual([
      expect.objectContaining({ repo: "main", error: null, totals: { hosts: 3, snapshots: 4, bytes: expect.any(Number) } }),
    ]);
    expect(o.pollErrors).toBe(0);
  });

  it("host page: snapshots oldest first and the retention preview of the config's policy", async () => {
    const h = await json("/api/repos/main/hosts/alpha");
    expect(h.snapshots.map((s: any) => s.id)).toEqual([fx.ids.a1, fx.ids.a2]);
    expect(h.snapshots[0].newBytes).toBeGreaterThan(300_000);
    expect(h.retention).toMatchObject({ policy: { keepLast: 1 }, keep: [fx.ids.a2], forget: [fx.ids.a1] });
    expect(h.check).toBeNull();
  });

  it("snapshot, ls, find: the real tree", async () => {
    const s = await json(snap(fx.ids.a2));
    expect(s).toMatchObject({ id: fx.ids.a2, host: "alpha", previous: fx.ids.a1, next: null, files: 4 });
    const root = await json(snap(fx.ids.a2, "/ls"));
    expect(root.entries.map((e: any) => [e.name, e.type])).toEqual([[fx.r.source.split("/")[1], "dir"]]);
    const ls = await json(snap(fx.ids.a2, `/ls?path=${encodeURIComponent(fx.r.source)}`));
    expect(ls.entries.map((e: any) => [e.name, e.type])).toEqual([["data", "dir"], ["docs", "dir"], ["etc", "dir"]]);
    const docs = await json(snap(fx.ids.a2, `/ls?path=${encodeURIComponent(shown("docs"))}`));
    expect(docs.entries).toEqual([
      expect.objectContaining({ name: "new.txt", path: shown("docs/new.txt"), type: "file", size: 4, mode: "-rw-r--r--" }),
      expect.objectContaining({ name: "readme.txt", type: "file", size: 12 }),
    ]);
    const found = await json(snap(fx.ids.a2, "/find?q=readme.*"));
    expect(found).toMatchObject({ pattern: "readme.*", truncated: false, matches: [{ path: shown("docs/readme.txt"), type: "file", size: 12 }] });
  });

  it("diff: the known change from the previous snapshot", async () => {
    const d = await json(snap(fx.ids.a2, "/diff"));
    expect(d).toMatchObject({ from: fx.ids.a1, to: fx.ids.a2, truncated: false });
    // Every file was written again (new mtimes); two changed content.
    const changes = d.changes.filter((c: any) => c.type === "file" && c.change !== "metadata");
    expect(changes).toEqual([
      { path: shown("docs/new.txt"), change: "added", type: "file" },
      expect.objectContaining({ path: shown("etc/conf.ini"), change: "modified", fields: expect.arrayContaining(["size", "content"]) }),
    ]);
    expect(d.summary.files).toEqual({ new: 1, removed: 0, changed: 3 });
    const back = await json(snap(fx.ids.a1, `/diff?against=${fx.ids.a2}`));
    expect(back.changes.filter((c: any) => c.type === "file" && c.change !== "metadata").map((c: any) => c.change)).toEqual(["removed", "modified"]);
  });

  it("file and tar downloads carry the source bytes", async () => {
    const res = await get(snap(fx.ids.a2, `/file?path=${encodeURIComponent(shown("data/big.bin"))}`));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toContain('filename="big.bin"');
    expect(Buffer.from(await res.arrayBuffer()).equals(fx.files["data/big.bin"]!)).toBe(true);

    const tar = await get(snap(fx.ids.a2, `/tar?path=${encodeURIComponent(shown("docs"))}`));
    expect(tar.status).toBe(200);
    expect(tar.headers.get("content-type")).toBe("application/x-tar");
    const members = await untar(Buffer.from(await tar.arrayBuffer()));
    const docs = shown("docs").slice(1);
    expect([...members.keys()].sort()).toEqual([docs, `${docs}/new.txt`, `${docs}/readme.txt`]);
    expect(members.get(`${docs}/readme.txt`)!.equals(fx.files["docs/readme.txt"]!)).toBe(true);
  });

  it("metrics: per-host gauges with the stale flag", async () => {
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('vaultik_serve_stale{repo="main",host="beta"} 1');
    expect(text).toContain('vaultik_serve_stale{repo="main",host="alpha"} 0');
    expect(text).toContain('vaultik_serve_snapshots{repo="main",host="alpha"} 2');
    expect(text).toContain(`vaultik_serve_last_snapshot_timestamp_seconds{repo="main",host="beta"} ${(fx.made - 240 * HOUR) / 1000}`);
    expect(text).toContain('vaultik_serve_poll_errors_total{repo="main"} 0');
  });

  it("bad parameters answer 400 or 404 JSON, never 500, never a file outside the snapshot", async () => {
    const id = fx.ids.a2;
    const cases: [string, number][] = [
      ["/api/repos/Main/hosts/alpha", 400],
      ["/api/repos/nope/hosts/alpha", 404],
      ["/api/repos/main/hosts/..", 400],
      ["/api/repos/main/hosts/%2E%2E", 400],
      ["/api/repos/../../../etc/passwd", 400],
      ["/api/repos/main/hosts/a%2Fb", 400],
      ["/api/repos/main/hosts/a%00b", 400],
      [`/api/repos/main/hosts/${"x".repeat(65)}`, 400],
      ["/api/repos/main/hosts/nohost", 404],
      ["/api/repos/main/snapshots/latest", 400],
      [`/api/repos/main/snapshots/${id.slice(0, -1)}0`, id.endsWith("0") ? 200 : 404],
      [snap(id, "/ls?path=/../../etc"), 400],
      [snap(id, "/ls?path=%2Fetc%00"), 400],
      [snap(id, "/ls?path=etc"), 400],
      [snap(id, `/ls?path=/${"a".repeat(5000)}`), 400],
      [snap(id, "/ls?path=/etc/passwd"), 404],
      [snap(id, `/file?path=${encodeURIComponent(shown("docs/../../vaultik.yml"))}`), 400],
      [snap(id, `/file?path=${encodeURIComponent(shown("docs"))}`), 400],
      [snap(id, "/file?path=/etc/passwd"), 404],
      [snap(id, "/find"), 400],
      [snap(id, "/diff?against=bogus"), 400],
      [snap(id, "/nothing"), 404],
      ["/api/repos/main/snapshots/%E0%A4%A", 400],
      ["/assets/..%2Fhttp.js", 400],
      ["/assets/.env", 400],
      ["/assets/missing.js", 404],
      ["/etc/passwd", 404],
      ["/api/nothing", 404],
    ];
    for (const [path, status] of cases) {
      const res = await rawGet(base, path);
      expect([path, res.status], res.body).toEqual([path, status]);
      if (status !== 200) expect(JSON.parse(res.body), path).toEqual({ error: expect.any(String) });
      expect(res.headers["content-security-policy"], path).toBe(CSP);
    }
    const post = await get("/api/overview", { method: "POST" });
    expect(post.status).toBe(405);
  });

  it("every response carries the security headers, and none holds a secret", async () => {
    // The private key as the user holds it, and s3rver's access key id and secret.
    const secrets = [fx.r.identity, fx.r.identity.slice(16, 40), "S3RVER"];
    const paths = [
      "/", "/index.html", "/healthz", "/metrics", "/api/overview", "/api/repos/main/hosts/alpha", "/api/repos/main/hosts/beta",
      "/api/repos/main/hosts/gamma", snap(fx.ids.a2), snap(fx.ids.a2, "/ls?path=/"), snap(fx.ids.a2, "/find?q=*"),
      snap(fx.ids.a2, "/diff"), snap(fx.ids.a2, `/tar?path=${encodeURIComponent(shown("etc"))}`), "/nothing",
    ];
    for (const path of paths) {
      const res = await get(path);
      expect(res.status, path).toBeLessThan(500);
      const h = res.headers;
      expect([h.get("content-security-policy"), h.get("x-content-type-options"), h.get("referrer-policy")], path).toEqual([CSP, "nosniff", "no-referrer"]);
      if (path.startsWith("/api")) expect(h.get("cache-control"), path).toBe("no-store");
      const body = Buffer.from(await res.arrayBuffer()).toString("latin1");
      for (const s of secrets) expect(body.includes(s), `${path} holds a secret`).toBe(false);
    }
  });

  if (kind === "directory") {
    it("the host page shows the last `vaultik check`, recorded by the CLI in the local cache", async () => {
      const out = await vaultik(["check", fx.r.repo, ""], { env: { VAULTIK_PRIVATE_KEY: fx.r.identity, VAULTIK_CACHE_DIR: checkRoot } });
      expect(out.code, out.stderr).toBe(0);
      const h = await json("/api/repos/main/hosts/beta");
      expect(h.check).toEqual({ time: expect.any(String), ok: true, summary: expect.stringContaining("4 snapshot(s)") });
      expect(Math.abs(Date.parse(h.check.time) - Date.now())).toBeLessThan(10 * 60_000);
    });
  }
});

describe("vaultik serve authentication", () => {
  it.each<[string, Auth, string]>([
    ["token", { kind: "token", token: "s3cret-token-value" }, "Bearer s3cret-token-value"],
    ["basic", { kind: "basic", user: "ops", password: "pa:ss word" }, `Basic ${Buffer.from("ops:pa:ss word").toString("base64")}`],
  ])("%s: 401 without the credential, 200 with it; /healthz is open", async (_kind, auth, header) => {
    const served = await serveFleet(new Repository(openFsStore(fx.r.repo)), auth);
    try {
      const url = (p: string) => new URL(p, served.server.url);
      for (const p of ["/api/overview", "/", "/metrics", "/api/repos/main/hosts/alpha"]) {
        const res = await fetch(url(p));
        expect(res.status, p).toBe(401);
        expect(res.headers.get("content-security-policy")).toBe(CSP);
        expect(res.headers.get("www-authenticate")).toMatch(auth.kind === "token" ? /^Bearer/ : /^Basic/);
        const wrong = await fetch(url(p), { headers: { Authorization: header.slice(0, -2) } });
        expect(wrong.status, p).toBe(401);
        const ok = await fetch(url(p), { headers: { Authorization: header } });
        expect(ok.status, p).toBe(200);
        const body = await ok.text();
        expect(body).not.toContain(auth.kind === "token" ? auth.token : auth.password);
      }
      expect((await fetch(url("/healthz"))).status).toBe(200);
    } finally {
      await served.close();
    }
  }, 60_000);
});

/** A GET of `path` exactly as written: fetch would resolve `..` and re-encode before sending. */
function rawGet(base: string, path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(base), { path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d)).on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.once("error", reject).end();
  });
}

async function untar(data: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const x = extract();
  const done = new Promise<void>((resolve, reject) => {
    x.on("entry", (header, stream, next) => {
      const parts: Buffer[] = [];
      stream.on("data", (d: unknown) => parts.push(d as Buffer));
      stream.on("end", () => {
        out.set(header.name.replace(/\/$/, ""), Buffer.concat(parts));
        next();
      });
    });
    x.on("finish", resolve);
    x.on("error", reject);
  });
  x.end(data);
  await done;
  return out;
}
