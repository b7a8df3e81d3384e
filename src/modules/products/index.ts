import { Elysia } from 'elysia'
import { Type as t } from '@sinclair/typebox'
import { clientAddress } from '../../lib/client-address'
import { CATALOGUE_CACHE_CONTROL, conditionalJson } from './http-cache'
import { errorResponses, IdParams, emptyResponse, pageOf } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { cachedPage, cachedProduct } from './cache'
import { CreateProductBody, ListProductsQuery, Product, UpdateProductBody } from './model'
import { catalogueQuery } from './queries'
import { countUncachedSearch } from './search-limit'
import { createProduct, deleteProduct, productNotFound, updateProduct } from './service'

const notModified = emptyResponse('Not modified: the If-None-Match ETag is current')
const IfNoneMatch = t.Object({
  'if-none-match': t.Optional(t.String({ description: 'An ETag from an earlier answer' })),
})

export const productRoutes = new Elysia({ prefix: '/api/products', detail: { tags: ['Products'] } })
  .use(authGuard)
  .get(
    '',
    async ({ query, request, server }) =>
      conditionalJson(
        request,
        await cachedPage(catalogueQuery(query), () => countUncachedSearch(clientAddress(request, server))),
      ),
    {
      query: ListProductsQuery,
      headers: IfNoneMatch,
      response: { 200: pageOf(Product), 304: notModified, ...errorResponses(400, 429, 503) },
      detail: {
        summary: 'Search and list products: filters, sort, pages',
        description:
          'Filters combine with AND; `total` counts the filtered set. Answers carry an ETag and ' +
          `\`Cache-Control: ${CATALOGUE_CACHE_CONTROL}\`: send the ETag back ` +
          'in If-None-Match to get a 304. Inventory shown may be up to 1 s old; orders always use the live stock. ' +
          'Answers no cache holds count against a per-client limit (429 with Retry-After past it); a search ' +
          'the database cannot answer quickly gets 503 with Retry-After.',
      },
    },
  )
  .get(
    '/:id',
    async ({ params, request }) => {
      const product = await cachedProduct(params.id)
      if (!product) throw productNotFound(params.id)
      return conditionalJson(request, product)
    },
    {
      params: IdParams,
      headers: IfNoneMatch,
      response: { 200: Product, 304: notModified, ...errorResponses(400, 404) },
      detail: {
        summary: 'Get one product',
        description: `Answers carry an ETag and \`Cache-Control: ${CATALOGUE_CACHE_CONTROL}\`; If-None-Match → 304.`,
      },
    },
  )
  .post(
    '',
    async ({ body, principal, set }) => {
      const product = await createProduct(principal.id, body)
      set.status = 201
      return product
    },
    {
      auth: 'admin',
      body: CreateProductBody,
      parse: 'json',
      response: { 201: Product, ...errorResponses(400, 401, 403) },
      detail: { summary: 'Create a product (admin)' },
    },
  )
  .put('/:id', ({ params, body, principal }) => updateProduct(principal.id, params.id, body), {
    auth: 'admin',
    params: IdParams,
    body: UpdateProductBody,
    parse: 'json',
    response: { 200: Product, ...errorResponses(400, 401, 403, 404) },
    detail: { summary: 'Update any non-empty subset of a product’s fields (admin)' },
  })
  .delete(
    '/:id',
    async ({ params, principal, set }) => {
      await deleteProduct(principal.id, params.id)
      set.status = 204
    },
    {
      auth: 'admin',
      params: IdParams,
      response: { 204: emptyResponse('Deleted'), ...errorResponses(400, 401, 403, 404) },
      detail: { summary: 'Delete a product (admin); its past order lines are kept' },
    },
  )
