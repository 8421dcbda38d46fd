/**
 * Address kinds. They are all plain numbers at run time (a double holds any physical address up
 * to 2^53 exactly), but the brands keep a guest-physical address from being passed where a
 * host-physical one is expected. Hot paths may use plain numbers internally; APIs use the brands.
 */
declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** An address on the machine's (host's) physical bus. */
export type HostPhysAddr = Brand<number, 'HostPhysAddr'>;
/** A guest-physical address: what a guest's page tables produce, translated by EPT. */
export type GuestPhysAddr = Brand<number, 'GuestPhysAddr'>;
/** A linear (virtual) address, after segmentation and before paging. */
export type LinearAddr = Brand<number, 'LinearAddr'>;
/** An I/O port number, 0..0xFFFF. */
export type IoPort = Brand<number, 'IoPort'>;

export const hpa = (n: number): HostPhysAddr => n as HostPhysAddr;
export const gpa = (n: number): GuestPhysAddr => n as GuestPhysAddr;
export const linear = (n: number): LinearAddr => n as LinearAddr;
export const ioPort = (n: number): IoPort => n as IoPort;

/** Access sizes in bytes that buses and devices accept. */
export type AccessSize = 1 | 2 | 4 | 8;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

export const hex = (n: number | bigint, width = 0): string => '0x' + n.toString(16).padStart(width, '0');
