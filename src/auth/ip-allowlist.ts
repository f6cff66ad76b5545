import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

/**
 * Splits a comma-separated CIDR list; throws naming the first entry that is not a CIDR. The address must be written
 * canonically: ipaddr.js alone would read 010.0.0.0/8 as 8.0.0.0/8 (octal) and 0xa.0.0.0/8 as 10.0.0.0/8.
 */
export function parseCidrList (list: string): string[] {
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  for (const entry of entries) {
    if (!ipaddr.isValidCIDR(entry) || !isCanonicalIp(entry.slice(0, entry.lastIndexOf('/')))) {
      throw new Error(`has "${entry}", which is not a CIDR such as 10.0.0.0/8 or ::1/128`)
    }
  }
  return entries
}

/**
 * Whether an address is written as clients and logs should see it: dotted-quad IPv4 (four decimal parts 0-255, no
 * leading zeros) or IPv6. ipaddr.js also reads 012.1.2.3, 0xa.1.2.3 and 167837955 as 10.1.2.3; node:net does not.
 */
export function isCanonicalIp (address: string): boolean {
  return isIP(address) !== 0
}

/**
 * Matches client addresses against CIDRs. IPv4-mapped IPv6 peers (::ffff:a.b.c.d) count as IPv4, and an IPv4
 * address lies in an IPv6 range when its mapped form does: ::ffff:127.0.0.0/104 admits 127.0.0.1, ::/0 everyone.
 * An address not written canonically matches nothing.
 */
export function createIpAllowlist (cidrs: string[]): (address: string) => boolean {
  const ranges: Range[] = cidrs.map((cidr) => ipaddr.parseCIDR(cidr))
  return (address) => {
    if (!isCanonicalIp(address)) return false
    const ip = ipaddr.process(address)
    const mapped = ip.kind() === 'ipv4' ? (ip as ipaddr.IPv4).toIPv4MappedAddress() : null
    return ranges.some(([range, bits]) => {
      if (ip.kind() === range.kind()) return ip.match(range, bits)
      return mapped !== null && mapped.match(range, bits)
    })
  }
}

/** The CIDRs of a list that admit more than loopback addresses; a mapped range (::ffff:127.0.0.0/104) as IPv4. */
/**
 * Whether a Host header's name is an address (or localhost), as a browser shows it for a page opened by address. A
 * page opened by a name may be an attacker's whose name was made to resolve here (DNS rebinding).
 */
export function isAddressHost (hostname: string): boolean {
  const name = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname
  return name.toLowerCase() === 'localhost' || ipaddr.isValid(name)
}

export function beyondLoopback (cidrs: string[]): string[] {
  return cidrs.filter((cidr) => {
    let [address, bits] = ipaddr.parseCIDR(cidr)
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      [address, bits] = [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
    }
    return address.range() !== 'loopback' || bits < (address.kind() === 'ipv4' ? 8 : 128)
  })
}
