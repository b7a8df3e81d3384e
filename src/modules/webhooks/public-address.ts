import { lookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'

// Webhook targets are chosen by admins but must never steer the worker inward (SSRF): to
// loopback, the private network, a cloud's metadata service. A name is resolved once per
// attempt, every address it resolves to is checked, and the request then goes to the checked
// address (see pinnedRequest), so a name that answers a public address to the check and a
// private one a moment later (DNS rebinding, TTL 0) never gets a second say.

/** Resolves a host name to every address it has. */
export type Resolver = (host: string) => Promise<string[]>

const systemResolver: Resolver = async (host) =>
  (await lookup(host, { all: true, verbatim: true })).map((entry) => entry.address)

let resolver = systemResolver

/** Lets a test answer DNS itself; returns the function that restores the system resolver. */
export function useResolver(next: Resolver) {
  resolver = next
  return () => {
    resolver = systemResolver
  }
}

/**
 * Names that never leave the local network whatever DNS says: `localhost` and its subdomains
 * (RFC 6761), names with no dot (`postgres`, `redis`: a container network's services), and the
 * special-use suffixes `.local` (mDNS), `.internal` (`host.docker.internal`) and `.home.arpa`.
 */
function isLocalName(host: string) {
  const name = host.toLowerCase().replace(/\.$/, '')
  return !name.includes('.') || name === 'localhost' || /\.(localhost|local|internal|home\.arpa)$/.test(name)
}

/**
 * What kind of address this is when it is not public unicast, else undefined: loopback,
 * private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local, unspecified, and what else
 * ipaddr.js classes as special (carrier NAT, multicast, documentation, 6to4 and NAT64 forms).
 * IPv4 inside IPv6 is checked as IPv4: mapped (::ffff:127.0.0.1) and the deprecated
 * compatible form (::127.0.0.1), which ipaddr.js would call unicast.
 */
function nonPublicKind(address: string): string | undefined {
  const parsed = ipaddr.process(address)
  if (parsed.kind() === 'ipv6') {
    const parts = (parsed as ipaddr.IPv6).parts
    if (parts.slice(0, 6).every((part) => part === 0)) {
      const embedded = ipaddr.fromByteArray((parsed as ipaddr.IPv6).toByteArray().slice(12))
      return embedded.range() === 'unicast' ? 'IPv4-compatible' : embedded.range()
    }
  }
  const range = parsed.range()
  return range === 'unicast' ? undefined : range
}

/** A target to connect to: the checked address, or why not (safe to show: no internal address). */
export type Resolution = { address: string } | { refused: string; unresolved?: true }

/**
 * Resolves the URL's host once and checks every address it has (unless `allowPrivate`). The
 * reason for a refusal names the host and the kind of address, never the address itself, so that
 * refusals cannot map an internal network.
 */
export async function resolveTarget(url: URL, allowPrivate: boolean): Promise<Resolution> {
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const literal = ipaddr.isValid(host)
  if (!literal && !allowPrivate && isLocalName(host))
    return { refused: `${url.hostname} is a local name, not a public host` }
  let addresses: string[]
  try {
    addresses = literal ? [host] : await resolver(host)
  } catch {
    return { refused: `${url.hostname} does not resolve`, unresolved: true }
  }
  if (!addresses.length) return { refused: `${url.hostname} does not resolve`, unresolved: true }
  if (!allowPrivate)
    for (const address of addresses) {
      const kind = nonPublicKind(address)
      if (kind)
        return {
          refused: literal
            ? `${url.hostname} is a ${kind} address, not a public one`
            : `${url.hostname} resolves to a ${kind} address, not a public one`,
        }
    }
  return { address: addresses[0]! }
}

/**
 * The URL to fetch and the options that make the request go to `address` while it still speaks
 * to the URL's host: the Host header, and for https the SNI and the certificate check.
 */
export function pinnedRequest(url: URL, address: string) {
  const pinned = new URL(url)
  pinned.hostname = address.includes(':') ? `[${address}]` : address
  const name = url.hostname.replace(/^\[|\]$/g, '')
  return {
    url: pinned,
    host: url.host,
    tls: url.protocol === 'https:' && !ipaddr.isValid(name) ? { serverName: name } : undefined,
  }
}
