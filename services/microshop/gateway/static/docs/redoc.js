// ReDoc over the schema the page names. Its styles are <style> elements it writes at run time:
// they carry this page's nonce, the only inline style the page's policy allows.
{
  const root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapi, { nonce: document.currentScript.nonce }, root);
}
