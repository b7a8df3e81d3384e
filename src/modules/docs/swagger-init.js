// Swagger UI's start-up, as a file of its own: the docs' policy allows no inline script.
window.ui = SwaggerUIBundle({
  url: '/swagger/json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  persistAuthorization: true,
})
