import { Elysia } from 'elysia'

/**
 * Bun closes the socket after answering a request that says `Connection: close`, but does not
 * say so in the response. Node's keep-alive agents (node-fetch, http-proxy gateways, many SDKs)
 * then pool the closing socket and their next request on it fails with ECONNRESET. Echoing the
 * header, as Express and every HTTP/1.1 server do, tells them not to reuse it.
 */
export const connectionClose = new Elysia({ name: 'connection-close' }).onRequest(({ request, set }) => {
  const connection = request.headers.get('connection')
  if (connection && /(^|,)\s*close\s*(,|$)/i.test(connection)) set.headers.connection = 'close'
})
