// Inside a merchant's frame: tell the embedding page our height (it resizes the frame)
// and, once paid, that the payment succeeded. Messages go only to the origins the
// merchant listed for embedding (postMessage's targetOrigin), never to "*".
(function () {
  var me = document.currentScript;
  if (window.parent === window || !me) return;
  var origins = (me.getAttribute("data-origins") || "").split(" ").filter(Boolean);
  function tell(message) {
    message.source = "portal";
    origins.forEach(function (origin) { window.parent.postMessage(message, origin); });
  }
  function height() {
    tell({ type: "resize", height: Math.ceil(document.documentElement.scrollHeight) });
  }
  document.addEventListener("DOMContentLoaded", function () {
    height();
    if (window.ResizeObserver) new ResizeObserver(height).observe(document.body);
    var paid = document.querySelector("[data-portal-paid]");
    if (paid) {
      tell({
        type: "paid",
        request: paid.getAttribute("data-request"),
        payment: paid.getAttribute("data-payment"),
        amount: Number(paid.getAttribute("data-amount")),
        currency: paid.getAttribute("data-currency"),
        status: paid.getAttribute("data-status")
      });
    }
  });
})();
