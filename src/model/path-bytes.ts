// File names are bytes on Linux, and a backup must give back exactly the bytes it was given.
// Inside vaultik a path is a JavaScript string in which every byte that is not part of valid
// UTF-8 stands as a lone low surrogate U+DC80..U+DCFF (Python's "surrogateescape"). Valid UTF-8
// never decodes to a lone surrogate, so the mapping is one-to-one: `y\xff` and `y\xef\xbf\xbd`
// stay two names (a decoder with replacement characters made them collide). Valid names, nearly
// all of them, are plain strings, so code that never meets a strange name pays nothing.
//
// Where bytes leave the process (file system calls, SQLite BLOB columns, the bucket) they are
// encoded back with encodePath; fsPath gives what node:fs accepts. Listings show names with
// displayPath, and commands take that form back with parseDisplayPath.

const ESCAPED = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;
const strict = new TextDecoder("utf-8", { fatal: true });

/** The internal string for a name or path given as bytes. */
export function decodePath(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    return decodeEscaping(bytes);
  }
}

/** The bytes of an internal path string (the inverse of decodePath). */
export function encodePath(path: string): Buffer {
  if (!ESCAPED.test(path)) return Buffer.from(path, "utf8");
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    const prev = i > 0 ? path.charCodeAt(i - 1) : 0;
    if (c >= 0xdc80 && c <= 0xdcff && !(prev >= 0xd800 && prev <= 0xdbff)) {
      parts.push(Buffer.from(path.slice(run, i), "utf8"), Buffer.of(c - 0xdc00));
      run = i + 1;
    }
  }
  parts.push(Buffer.from(path.slice(run), "utf8"));
  return Buffer.concat(parts);
}

/** Whether the path holds bytes that are not UTF-8. */
export function hasRawBytes(path: string): boolean {
  return ESCAPED.test(path);
}

/** What node:fs takes for an internal path: the string itself, or its bytes when it has raw bytes. */
export function fsPath(path: string): string | Buffer {
  return ESCAPED.test(path) ? encodePath(path) : path;
}

/**
 * A path as listings show it: bytes that are not UTF-8 and control characters (a newline in a
 * name would split a listing's line) as `\xHH`, and a backslash doubled so the form reads back
 * unambiguously. A plain name shows as itself.
 */
export function displayPath(path: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[\\\u0000-\u001f\u007f]/.test(path) && !ESCAPED.test(path)) return path;
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    const prev = i > 0 ? path.charCodeAt(i - 1) : 0;
    if (c === 0x5c) out += "\\\\";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (c >= 0xdc80 && c <= 0xdcff && !(prev >= 0xd800 && prev <= 0xdbff)) out += `\\x${(c - 0xdc00).toString(16).padStart(2, "0")}`;
    else out += path[i];
  }
  return out;
}

/**
 * The internal path for a form displayPath printed: `\\` is a backslash and `\xHH` the byte HH.
 * A backslash followed by anything else stays as it is. Callers that can look a path up try the
 * argument as typed first, so a name that really contains `\x41` is still found.
 */
export function parseDisplayPath(shown: string): string {
  if (!shown.includes("\\")) return shown;
  const bytes: number[] = [];
  const text = Buffer.from(shown, "utf8");
  for (let i = 0; i < text.length; i++) {
    if (text[i] === 0x5c && text[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (text[i] === 0x5c && text[i + 1] === 0x78 && /^[0-9a-fA-F]{2}$/.test(text.subarray(i + 2, i + 4).toString("latin1"))) {
      bytes.push(parseInt(text.subarray(i + 2, i + 4).toString("latin1"), 16));
      i += 3;
    } else bytes.push(text[i]!);
  }
  return decodePath(Uint8Array.from(bytes));
}

/** decodePath for bytes that are not valid UTF-8: each byte no valid sequence covers is escaped. */
function decodeEscaping(b: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < b.length) {
    const n = validSequenceLength(b, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + b[i]!);
      i++;
    } else {
      out += strict.decode(b.subarray(i, i + n));
      i += n;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at b[i] (RFC 3629: no overlongs, no surrogates), or 0. */
function validSequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
