import type { AddressInfo } from "node:net";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";

// A local SMTP server for alert tests (smtp-server, the nodemailer project's own server), on
// 127.0.0.1 and a free port. AUTH is required and, as smtp-server does by default, only allowed
// after TLS; its built-in self-signed certificate is used, so a client must be told to accept it.
// A rejected login answers with the password it was given, as a careless server might: the
// client's log line must still not show it.

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The message as sent: headers, blank line, body (transfer encoding undone by decodeBody). */
  raw: string;
  /** The connection was encrypted (STARTTLS or implicit TLS) when the message was sent. */
  secure: boolean;
  user: string | undefined;
}

export interface TestSmtp {
  port: number;
  received: ReceivedMail[];
  /** Authentication attempts, as "user:ok" or "user:rejected". */
  logins: string[];
  close(): Promise<void>;
}

/** `tls` replaces the built-in certificate (e.g. one a test made for 127.0.0.1). */
export async function startSmtp(o: { secure: boolean; user: string; password: string; tls?: { key: string; cert: string } }): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const logins: string[] = [];
  const options: SMTPServerOptions = {
    secure: o.secure,
    ...o.tls,
    logger: false,
    authMethods: ["PLAIN", "LOGIN"],
    onAuth(auth, _session, callback) {
      if (auth.username === o.user && auth.password === o.password) {
        logins.push(`${auth.username}:ok`);
        callback(null, { user: auth.username });
      } else {
        logins.push(`${auth.username ?? ""}:rejected`);
        callback(new Error(`authentication failed for ${auth.username}/${auth.password}`));
      }
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        received.push({
          from: session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString("utf8"),
          secure: session.secure,
          user: typeof session.user === "string" ? session.user : undefined,
        });
        callback();
      });
    },
  };
  const server = new SMTPServer(options);
  // The built-in certificate's warning goes to stderr once per server; it is expected here.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    logins,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A header's value (unfolded), or undefined. */
export function header(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? "";
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const line = unfolded.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

/** The text body with quoted-printable soft breaks and escapes undone. */
export function decodeBody(raw: string): string {
  const at = raw.search(/\r?\n\r?\n/);
  const body = at < 0 ? "" : raw.slice(at).replace(/^\r?\n\r?\n/, "");
  if (!/quoted-printable/i.test(header(raw, "Content-Transfer-Encoding") ?? "")) return body.replace(/\r\n/g, "\n");
  const bytes = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8").replace(/\r\n/g, "\n");
}
