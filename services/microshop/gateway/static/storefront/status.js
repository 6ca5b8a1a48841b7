// An order's status in words, the same on the order page and in the history.

import { h } from "./dom.js";
import { failureReason } from "./payment-methods.js";

export const FINAL = new Set(["PAID", "PAYMENT_FAILED"]);

const WORDS = { PENDING: "Payment pending", PAID: "Paid", PAYMENT_FAILED: "Payment failed" };

export function statusBadge(order) {
  return h("span", {
    class: `status status-${order.status.toLowerCase()}`,
    text: WORDS[order.status] || order.status,
  });
}

export function statusSentence(order) {
  if (order.status === "PAID") return "Paid. Thank you for your order!";
  if (order.status === "PAYMENT_FAILED")
    return `Payment failed: ${failureReason(order.failure_code)}`;
  return "Order placed. Waiting for the payment…";
}
