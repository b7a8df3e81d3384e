import { Elysia } from 'elysia'
import { errorResponses, IdParams, noContent, pageOf, pagination } from '../../lib/model'
import { authGuard } from '../auth/guard'
import { CreateProductBody, ListProductsQuery, Product, UpdateProductBody } from './model'
import { createProduct, deleteProduct, getProduct, listProducts, updateProduct } from './service'

export const productRoutes = new Elysia({ prefix: '/api/products', detail: { tags: ['Products'] } })
  .use(authGuard)
  .get('', ({ query }) => listProducts({ ...pagination(query), active: query.active }), {
    query: ListProductsQuery,
    response: { 200: pageOf(Product), ...errorResponses(400) },
    detail: { summary: 'List products, ordered by id' },
  })
  .get('/:id', ({ params }) => getProduct(params.id), {
    params: IdParams,
    response: { 200: Product, ...errorResponses(400, 404) },
    detail: { summary: 'Get one product' },
  })
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
      response: { 201: Product, ...errorResponses(400, 401, 403) },
      detail: { summary: 'Create a product (admin)' },
    },
  )
  .put('/:id', ({ params, body, principal }) => updateProduct(principal.id, params.id, body), {
    auth: 'admin',
    params: IdParams,
    body: UpdateProductBody,
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
      response: { 204: noContent('Deleted'), ...errorResponses(400, 401, 403, 404) },
      detail: { summary: 'Delete a product (admin); its past order lines are kept' },
    },
  )
