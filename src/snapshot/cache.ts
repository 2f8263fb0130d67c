// Placeholder: the local cache of decrypted snapshot databases (issue 16) lands here.
export interface SnapshotCache {
  readonly dir: string;
}
