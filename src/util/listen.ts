import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

// Starting and stopping an HTTP server the same way everywhere (the daemon's status server,
// `vaultik serve`): resolve once listening, close promptly even with keep-alive clients.

export interface Listening {
  /** Base URL, e.g. http://127.0.0.1:9812 (IPv6 hosts in brackets). */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function listen(server: Server, host: string, port: number): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shown}:${bound}`,
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections (curl, Prometheus) would otherwise hold close() open until they
        // time out on their own.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
