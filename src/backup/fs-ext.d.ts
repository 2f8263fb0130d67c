// The call vaultik uses of fs-ext (lseek with SEEK_DATA/SEEK_HOLE); it ships no types.
declare module "fs-ext" {
  /** lseek(2); whence 3 = SEEK_DATA, 4 = SEEK_HOLE on Linux. Throws ENXIO past the last data. */
  export function seekSync(fd: number, offset: number, whence: number): number;
  const fsExt: { seekSync: typeof seekSync };
  export default fsExt;
}
