import { rootCertificates } from "node:tls";
import nodemailer from "nodemailer";
import type { AlertSeverity, EmailAlertConfig } from "../config/types.js";
import { alertTitle, emailText } from "./alert-format.js";
import type { Alert } from "./alert-types.js";

// One alert, one email, one SMTP connection (alerts are rare; a pool would only hold a socket
// open for days). TLS is never dropped silently: `starttls` requires the upgrade, and a
// certificate is checked unless the config trusts a CA file or says tls_insecure.

export async function sendEmail(c: EmailAlertConfig, a: Alert, severity: AlertSeverity, timeoutMs: number): Promise<void> {
  const transport = nodemailer.createTransport({
    host: c.host,
    port: c.port,
    secure: c.security === "tls",
    requireTLS: c.security === "starttls",
    ignoreTLS: c.security === "none",
    auth: c.user === undefined ? undefined : { user: c.user, pass: c.password },
    tls: {
      // A CA file adds to the system's roots: Node would otherwise trust that file alone.
      ca: c.tlsCa === undefined ? undefined : [...rootCertificates, c.tlsCa],
      rejectUnauthorized: !c.tlsInsecure,
    },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    // The message is ours, but nothing in it should ever make nodemailer read a file or a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  // Each phase has its own timeout above; this bounds their sum, so a slow server cannot hold
  // a daemon's shutdown (which waits for deliveries) past timeoutMs.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      transport.close();
      reject(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: "TimeoutError" }));
    }, timeoutMs);
  });
  const sending = transport.sendMail({ from: c.from, to: c.to, subject: alertTitle(a), text: emailText(a, severity) });
  // Lost the race: its later rejection (the socket was closed) is expected, not unhandled.
  sending.catch(() => {});
  try {
    await Promise.race([sending, deadline]);
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}
