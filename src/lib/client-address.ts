import { config } from '../config'

type AddressSource = { requestIP(request: Request): { address: string } | null } | null | undefined

/** The caller's address: the socket peer, or the first X-Forwarded-For hop when behind a trusted proxy. */
export function clientAddress(request: Request, server: AddressSource): string {
  if (config.TRUST_PROXY) {
    const forwarded = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim()
    if (forwarded) return forwarded
  }
  return server?.requestIP(request)?.address ?? 'unknown'
}
