/**
 * Shared caches may keep a catalogue answer one second: the contract lets inventory in catalogue
 * reads be at most 1 s stale. Clients revalidate with If-None-Match after that.
 */
export const CATALOGUE_CACHE_CONTROL = 'public, max-age=1'

/** Whether If-None-Match names this ETag (a list, weak or strong, or `*`). */
export function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false
  return ifNoneMatch.split(',').some((candidate) => {
    const tag = candidate.trim()
    return tag === '*' || tag === etag || tag === `W/${etag}`
  })
}

/** A JSON answer already serialised, with its ETag: 304 without a body when the client has it. */
export function conditionalJson(request: Request, answer: { body: string; etag: string }): Response {
  const headers = { etag: answer.etag, 'cache-control': CATALOGUE_CACHE_CONTROL }
  if (etagMatches(request.headers.get('if-none-match'), answer.etag))
    return new Response(null, { status: 304, headers })
  return new Response(answer.body, { headers: { ...headers, 'content-type': 'application/json' } })
}
