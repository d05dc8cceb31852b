// Stripe's Payment Element: cards, iDEAL, Bancontact, SEPA… as the account enables them.
// The amount is in the PaymentIntent (set by the server); the browser never sends one.
document.addEventListener("DOMContentLoaded", function () {
  var cfg = JSON.parse(document.getElementById("stripe-config").textContent);
  var options = { locale: cfg.locale };
  if (cfg.stripeAccount) options.stripeAccount = cfg.stripeAccount;
  var stripe = Stripe(cfg.publishableKey, options);
  var elements = stripe.elements({ clientSecret: cfg.clientSecret });
  elements.create("payment").mount("#payment-element");
  var form = document.getElementById("payment-form");
  var button = document.getElementById("submit");
  var message = document.getElementById("payment-message");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    stripe.confirmPayment({ elements: elements, confirmParams: { return_url: cfg.returnUrl } })
      .then(function (result) {
        if (result.error) {
          message.textContent = result.error.message;
          message.hidden = false;
          button.disabled = false;
        }
      });
  });
});
