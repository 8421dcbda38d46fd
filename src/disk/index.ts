/** `vmm disk` operations as library functions, and the file-backed sector device they use. */
export type { AddOptions, CreateDiskOptions, DiskOptions } from './disk.js';
export { addFiles, catDisk, createDisk, formatListing, listDisk, parseSize } from './disk.js';
export { FileDevice } from './file-device.js';
