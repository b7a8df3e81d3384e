import { config } from '../config'

type AddressSource = { requestIP(request: Request): { address: string } | null } | null | undefined

/** TRUST_PROXY: `false`, `true` (one proxy) or the number of proxies in front of the API. */
export const trustedProxyHops = (setting: string) =>
  setting === 'true' ? 1 : setting === 'false' ? 0 : Number(setting)

const TRUSTED_HOPS = trustedProxyHops(config.TRUST_PROXY)

/**
 * The caller's address: the socket peer, or behind trusted proxies the X-Forwarded-For entry
 * the outermost trusted proxy appended. Each proxy appends the address it received from, so
 * with N proxies the client is N entries from the right; anything left of it is whatever the
 * client chose to send, and never counts.
 */
export function clientAddress(request: Request, server: AddressSource, hops = TRUSTED_HOPS): string {
  if (hops > 0) {
    const entries = (request.headers.get('x-forwarded-for') ?? '')
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean)
    if (entries.length > 0) return entries[Math.max(0, entries.length - hops)]!
  }
  return server?.requestIP(request)?.address ?? 'unknown'
}
