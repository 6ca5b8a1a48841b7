// The shop's test payment methods (the providers' well-known test-mode names): no real card
// is ever charged. What each one does is shown next to it at checkout.

export const PAYMENT_METHODS = [
  {
    id: "pm_card_visa",
    label: "Test Visa card",
    outcome: "Payment succeeds",
    description: "The order is paid a moment after you place it.",
  },
  {
    id: "pm_card_mastercard",
    label: "Test Mastercard",
    outcome: "Payment succeeds",
    description: "The order is paid a moment after you place it.",
  },
  {
    id: "pm_card_chargeDeclined",
    label: "Test card: declined",
    outcome: "Payment fails",
    description: "The bank declines the charge; the order ends as payment failed.",
  },
  {
    id: "pm_card_chargeDeclinedInsufficientFunds",
    label: "Test card: insufficient funds",
    outcome: "Payment fails",
    description: "The card has no funds left; the order ends as payment failed.",
  },
];

// Why a payment failed, in words (failure codes from the payments service).
export const FAILURE_REASONS = {
  card_declined: "The card was declined.",
  insufficient_funds: "The card has insufficient funds.",
  payment_method_unsupported: "That payment method is not supported.",
  invalid_amount: "The amount could not be charged.",
};

export function failureReason(code) {
  return FAILURE_REASONS[code] || "The payment did not go through.";
}
