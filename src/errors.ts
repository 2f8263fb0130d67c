// One error family per kind of failure. Every error names the object, path or key it concerns,
// so the CLI can print a message a user can act on and map the family to an exit code in one
// place. Messages must never contain secrets: callers pass names, never credentials.

export type ErrorCode =
  | "USAGE"
  | "CONFIG"
  | "INTEGRITY"
  | "NO_IDENTITY"
  | "STORE"
  | "NOT_FOUND"
  | "LOCKED"
  | "SOURCE"
  | "HOOK";

export abstract class VaultikError extends Error {
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A command-line argument, option or environment variable is missing or wrong. `argument` is
 * what the user typed or set (`TARGET_DIR`, `--output`, `VAULTIK_PRIVATE_KEY`), and leads the
 * message, so it is never mistaken for a problem in the config file.
 */
export class UsageError extends VaultikError {
  readonly code = "USAGE";
  constructor(
    readonly argument: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${argument}: ${detail}`, options);
  }
}

/**
 * A configuration value is missing, malformed or of the wrong kind. `key` is the config key, or
 * `config` for the file as a whole (unreadable, not YAML).
 */
export class ConfigError extends VaultikError {
  readonly code = "CONFIG";
  constructor(
    readonly key: string,
    /** The message without the `config: key:` label, for callers that relabel it. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`config: ${key}: ${detail}`, options);
  }
}

/**
 * Data failed a cryptographic or integrity check: bad MAC, bad AEAD tag, truncated stream,
 * malformed header, hash mismatch. `object` names the blob or file concerned.
 */
export class IntegrityError extends VaultikError {
  readonly code: ErrorCode = "INTEGRITY";
  constructor(
    readonly object: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${object}: ${message}`, options);
  }
}

/**
 * None of the identities we hold can unwrap the file key of `object`. A wrapped key damaged in
 * place fails the same way (see unwrapFileKey), so the message names both causes.
 */
export class NoIdentityError extends IntegrityError {
  override readonly code = "NO_IDENTITY";
  constructor(object: string) {
    super(object, "no identity matches any recipient stanza (wrong private key, or a damaged header)");
  }
}

/**
 * Snapshots whose databases could not be read (each `problem` names its object), so what they
 * reference is unknown. `advice` is what the caller can tell the user to do about it.
 */
export class UnreadableSnapshotsError extends IntegrityError {
  constructor(
    /** `wrongKey`: no identity given opens it (an older key, or a damaged wrapped key). */
    readonly snapshots: readonly { id: string; problem: string; wrongKey: boolean }[],
    readonly advice = "",
  ) {
    super(
      snapshots.length === 1 ? `snapshot ${snapshots[0]!.id}` : `${snapshots.length} snapshots`,
      `cannot be read: ${snapshots.map((s) => s.problem).join("; ")}${advice ? `. ${advice}` : ""}`,
    );
  }
}

/**
 * A storage backend failed: network, permissions, full disk. `store` names the backend
 * (e.g. `s3://bucket/prefix` or a directory) and `key` the object, when there is one.
 */
export class StoreError extends VaultikError {
  readonly code: ErrorCode = "STORE";
  constructor(
    readonly store: string,
    readonly key: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${store}${key === undefined ? "" : ` ${key}`}: ${message}`, options);
  }
}

/**
 * This host's own state (the local index, its work directory) could not be written: a full
 * disk, a read-only mount. `path` names the file or directory; nothing in the repository is
 * affected.
 */
export class LocalStateError extends VaultikError {
  readonly code: ErrorCode = "STORE";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${message}`, options);
  }
}

/** The object, snapshot or file does not exist. */
export class NotFoundError extends VaultikError {
  readonly code = "NOT_FOUND";
  constructor(
    readonly object: string,
    message = "not found",
    options?: { cause?: unknown },
  ) {
    super(`${object}: ${message}`, options);
  }
}

export function isNotFound(err: unknown): err is NotFoundError {
  return err instanceof NotFoundError;
}

/** Another process holds the lock (a backup of the same config, a prune of the repository). */
export class LockedError extends VaultikError {
  readonly code = "LOCKED";
  constructor(
    readonly lock: string,
    message: string,
  ) {
    super(`${lock}: ${message}`);
  }
}

/** A configured source directory cannot be backed up (missing, not a directory); `path` is absolute. */
export class SourceError extends VaultikError {
  readonly code = "SOURCE";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`source_dirs: ${path} ${message}`, options);
  }
}

/**
 * The text of anything thrown: an Error's message, a thrown string as is. Libraries (and
 * workers, across structured clone) do throw strings and plain objects, for which a cast to
 * Error reads `undefined`.
 */
/** A hook the user configured (pre_backup) failed or timed out, so no backup was made. */
export class HookError extends VaultikError {
  readonly code = "HOOK";
  constructor(
    readonly hook: string,
    message: string,
  ) {
    super(message);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "object" && err !== null && typeof (err as { message?: unknown }).message === "string") {
    return (err as { message: string }).message;
  }
  return String(err);
}
