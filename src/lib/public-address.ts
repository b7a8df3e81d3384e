import { lookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'

/**
 * Why a webhook target must not be called (SSRF): its host is, or resolves to, an address that
 * is not public unicast: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local,
 * unspecified, and the rest of what ipaddr.js classes as special (carrier NAT, multicast,
 * documentation ranges, IPv4 inside IPv6 such as ::ffff:127.0.0.1 is checked as IPv4).
 * Returns undefined when every address is public, or the host does not resolve (`unresolved`).
 */
export async function nonPublicTarget(url: URL): Promise<{ address?: string; unresolved?: true } | undefined> {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  if (ipaddr.isValid(host)) addresses = [host]
  else {
    try {
      addresses = (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address)
    } catch {
      return { unresolved: true }
    }
  }
  const refused = addresses.find((address) => ipaddr.process(address).range() !== 'unicast')
  return refused === undefined ? undefined : { address: refused }
}
