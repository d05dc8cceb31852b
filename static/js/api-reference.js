// The API reference page (/docs/api): Swagger UI on the portal's own OpenAPI document.
// No inline script: the document's URL comes from the page's data-spec-url attribute.
(function () {
  "use strict";
  var root = document.getElementById("api-reference");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    // Never send our document to an outside validator (Swagger UI's default badge does).
    validatorUrl: null,
    // An API key typed into "Authorize" stays in this tab's memory only.
    persistAuthorization: false,
    defaultModelsExpandDepth: 0,
  });
})();
