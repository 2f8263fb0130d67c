// The library behind the vaultik CLI, for programs that back up, list, restore, check or prune
// without spawning it. The CLI (src/cli) is built on exactly these entry points.

export { VERSION } from "./version.js";
export { loadConfig, parseConfig, type Config } from "./config/index.js";
export { runBackup, type RunBackupOptions } from "./backup/run.js";
export type { BackupSummary } from "./backup/archiver.js";
export { Repository, type SnapshotObject } from "./repo/repository.js";
export { openStore } from "./store/open.js";
export { openFsStore } from "./store/fs.js";
export { openS3Store, type S3StoreOptions } from "./store/s3.js";
export type { CallOptions, ObjectInfo, Store } from "./store/store.js";
export {
  generateIdentity,
  parseIdentity,
  parseIdentityFile,
  parseRecipient,
  type X25519Identity,
  type X25519Recipient,
} from "./crypto/keys.js";
export { withSnapshot } from "./snapshot/open.js";
export type { SnapshotReader } from "./snapshot/read.js";
export { Restorer, type RestoreOptions, type RestoreSummary } from "./restore/restorer.js";
export { dumpFile, type DumpOptions } from "./restore/dump.js";
export { check, type CheckOptions, type CheckReport } from "./check/check.js";
export { prune, type PruneOptions, type PruneReport } from "./prune/prune.js";
export * from "./errors.js";
