import ipaddr from 'ipaddr.js';
import { z } from 'zod';

export const Cidr = z.union([z.cidrv4(), z.cidrv6()], { error: 'must be an IPv4 or IPv6 CIDR such as 10.244.0.0/16' });

/** Two CIDRs overlap when either contains the other's network address (ranges are aligned blocks). */
export function cidrsOverlap(a: string, b: string): boolean {
  const [addrA, lenA] = ipaddr.parseCIDR(a);
  const [addrB, lenB] = ipaddr.parseCIDR(b);
  if (addrA.kind() !== addrB.kind()) return false;
  return addrA.match(addrB, Math.min(lenA, lenB));
}

export const MacAddress = z
  .string()
  .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'must be a MAC address such as 52:54:00:00:00:01')
  .transform((s) => s.toLowerCase());

/** host:port or an IP literal; where a site's hosts are reached over SSH. */
export const HostAddress = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a hostname or IP address');
