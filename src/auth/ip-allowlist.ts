import ipaddr from 'ipaddr.js'

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

/** Splits a comma-separated CIDR list; throws naming the first entry that is not a CIDR. */
export function parseCidrList (list: string): string[] {
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  for (const entry of entries) {
    if (!ipaddr.isValidCIDR(entry)) throw new Error(`has "${entry}", which is not a CIDR such as 10.0.0.0/8 or ::1/128`)
  }
  return entries
}

/** Matches client addresses against CIDRs; IPv4-mapped IPv6 peers (::ffff:a.b.c.d) count as IPv4. */
export function createIpAllowlist (cidrs: string[]): (address: string) => boolean {
  const ranges: Range[] = cidrs.map((cidr) => {
    const [address, bits] = ipaddr.parseCIDR(cidr)
    return [address, bits]
  })
  return (address) => {
    if (!ipaddr.isValid(address)) return false
    const ip = ipaddr.process(address)
    return ranges.some(([range, bits]) => ip.kind() === range.kind() && ip.match(range, bits))
  }
}

/** The CIDRs of a list that admit more than loopback addresses. */
export function beyondLoopback (cidrs: string[]): string[] {
  return cidrs.filter((cidr) => {
    const [address, bits] = ipaddr.parseCIDR(cidr)
    return address.range() !== 'loopback' || bits < (address.kind() === 'ipv4' ? 8 : 128)
  })
}
