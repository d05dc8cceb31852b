/*! Payment portal embed: a pay button or an inline frame on a merchant's page.
 * No dependencies. Usage:
 *   <div data-portal-link="https://pay.example.com/p/…" data-portal-mode="inline"></div>
 *   <div data-portal-link="https://pay.example.com/p/…" data-portal-mode="button"
 *        data-portal-label="Pay €125.00"></div>
 *   <script src="https://pay.example.com/static/embed.js" async></script>
 * The frame grows to its content; a "portal:paid" event (detail: request, payment,
 * amount, currency, status) bubbles from the element once paid. Messages are read only
 * from the portal's own origin and from the element's own frame. */
(function () {
  "use strict";
  function originOf(url) {
    try { return new URL(url, document.baseURI).origin; } catch (e) { return null; }
  }
  function frameFor(el, link, title) {
    var frame = document.createElement("iframe");
    frame.src = link;
    frame.title = title || "Payment";
    frame.setAttribute("allow", "payment");
    frame.style.cssText = "width:100%;border:0;min-height:480px;display:block;";
    return frame;
  }
  function listen(el, frame, origin) {
    window.addEventListener("message", function (event) {
      if (event.origin !== origin || event.source !== frame.contentWindow) return;
      var data = event.data || {};
      if (data.source !== "portal") return;
      if (data.type === "resize" && data.height > 0) {
        frame.style.height = Math.min(data.height, 5000) + "px";
        frame.style.minHeight = "0";
      } else if (data.type === "paid") {
        el.setAttribute("data-portal-paid", "true");
        el.dispatchEvent(new CustomEvent("portal:paid", {
          bubbles: true,
          detail: { request: data.request, payment: data.payment, amount: data.amount,
                    currency: data.currency, status: data.status }
        }));
      }
    });
  }
  function inline(el, link, origin) {
    var frame = frameFor(el, link, el.getAttribute("data-portal-title"));
    el.appendChild(frame);
    listen(el, frame, origin);
  }
  function button(el, link, origin) {
    var open = document.createElement("button");
    open.type = "button";
    open.textContent = el.getAttribute("data-portal-label") || "Pay";
    open.className = "portal-pay-button";
    el.appendChild(open);
    open.addEventListener("click", function () {
      var dialog = document.createElement("dialog");
      dialog.style.cssText = "width:min(40rem,100%);padding:0;border:0;border-radius:8px;";
      var close = document.createElement("button");
      close.type = "button";
      close.textContent = "\u00d7";
      close.setAttribute("aria-label", el.getAttribute("data-portal-close") || "Close");
      close.style.cssText = "float:right;font-size:1.5rem;border:0;background:none;cursor:pointer;";
      close.addEventListener("click", function () { dialog.close(); dialog.remove(); });
      var frame = frameFor(el, link, el.getAttribute("data-portal-title"));
      dialog.appendChild(close);
      dialog.appendChild(frame);
      document.body.appendChild(dialog);
      listen(el, frame, origin);
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    });
  }
  function mount(el) {
    if (el.getAttribute("data-portal-mounted")) return;
    var link = el.getAttribute("data-portal-link");
    var origin = link && originOf(link);
    if (!origin || origin.indexOf("https://") !== 0 && origin.indexOf("http://127.0.0.1") !== 0) return;
    el.setAttribute("data-portal-mounted", "true");
    (el.getAttribute("data-portal-mode") === "button" ? button : inline)(el, link, origin);
  }
  function mountAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-portal-link]"), mount);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mountAll);
  else mountAll();
})();
