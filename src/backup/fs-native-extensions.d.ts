// The calls vaultik uses of fs-native-extensions (fd-based xattr system calls); it ships no types.
declare module "fs-native-extensions" {
  /** flistxattr(2): the attribute names the kernel lets this process list. */
  export function listAttrsSync(fd: number): string[];
  /** fgetxattr(2): the value, or null when the attribute is not there. */
  export function getAttrSync(fd: number, name: string): Buffer | null;
  /** fsetxattr(2). */
  export function setAttrSync(fd: number, name: string, value: string | Uint8Array, encoding?: BufferEncoding): void;
  /** fremovexattr(2). */
  export function removeAttrSync(fd: number, name: string): void;
  const fsx: {
    listAttrsSync: typeof listAttrsSync;
    getAttrSync: typeof getAttrSync;
    setAttrSync: typeof setAttrSync;
    removeAttrSync: typeof removeAttrSync;
  };
  export default fsx;
}
