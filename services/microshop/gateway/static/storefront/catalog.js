// The catalog from the orders service (the price authority), and what the storefront adds to
// each product: its picture and a line about it. A product the storefront does not know yet
// still sells, with a neutral picture.

import { api, itemsOf } from "./api.js";

const MEDIA = {
  "MUG-CLASSIC": {
    image: "./images/mug-classic.svg",
    blurb: "A 350 ml stoneware mug that keeps coffee hot through a long stand-up.",
  },
  "TEE-LOGO-M": {
    image: "./images/tee-logo-m.svg",
    blurb: "Soft organic cotton T-shirt with the microshop logo, size M.",
  },
  "TEE-LOGO-L": {
    image: "./images/tee-logo-l.svg",
    blurb: "Soft organic cotton T-shirt with the microshop logo, size L.",
  },
  "HOODIE-GREY": {
    image: "./images/hoodie-grey.svg",
    blurb: "Heavyweight grey hoodie with a kangaroo pocket, for cold server rooms.",
  },
  "STICKERS-5": {
    image: "./images/stickers-5.svg",
    blurb: "Five weatherproof vinyl stickers for laptops and water bottles.",
  },
  "NOTEBOOK-A5": {
    image: "./images/notebook-a5.svg",
    blurb: "A5 dotted notebook, 120 pages, lies flat for architecture sketches.",
  },
};
const FALLBACK = { image: "./images/product.svg", blurb: "" };

export function mediaOf(sku) {
  return MEDIA[sku] || FALLBACK;
}

// One fetch shared by the views drawn close together (header, page); refreshed after a while
// so a price change reaches an open tab.
const FRESH_MS = 30_000;
let cached = null;

export function products() {
  if (!cached || Date.now() - cached.at > FRESH_MS) {
    const request = api("/products").then(itemsOf);
    cached = { at: Date.now(), request };
    request.catch(() => {
      if (cached && cached.request === request) cached = null;
    });
  }
  return cached.request;
}
