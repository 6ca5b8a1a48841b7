// What every page shares: its heading and content area, a loading line, and errors that are
// drawn in place of the content (a refused token goes to log in instead).

import { h, replace } from "./dom.js";
import { errorPanel } from "./forms.js";
import { sessionEnded } from "./navigation.js";

// Draws the heading at once and returns the area below it.
export function page(main, title, ...intro) {
  const content = h("div", { class: "content" }, h("p", { class: "loading", text: "Loading…" }));
  replace(main, h("h1", { tabindex: "-1", text: title }), intro, content);
  return content;
}

// Fill `content` with what `load` draws; on an error show it there, with a way to try again.
export async function fill(content, signal, load) {
  content.setAttribute("aria-busy", "true");
  try {
    const nodes = await load();
    if (!signal.aborted) replace(content, nodes);
  } catch (error) {
    if (signal.aborted) return;
    if (!(error && "status" in error)) throw error;
    if (error.sessionEnded) {
      sessionEnded();
      return;
    }
    replace(
      content,
      errorPanel(error, () => fill(content, signal, load)),
    );
  } finally {
    content.removeAttribute("aria-busy");
  }
}

export function productImage(src, alt = "", className = "product-image") {
  return h("img", { src, alt, class: className, width: 320, height: 240, decoding: "async" });
}
