// Thumbnails in a page's rows of links (.fg-linkrow): each link leads to a unit page, and that unit's
// folder holds its image (THUMB, the primary view's render), which the link shows at 64 px. The page
// holds the link and its number only: the image's address would add about 50 bytes a link to each of
// a full gallery's tens of thousands of unit pages. Without scripts, an empty square keeps its place.
(() => {
  const THUMB = "regularized.webp";

  function thumbnails() {
    for (const a of document.querySelectorAll(".fg-linkrow > a[href]")) {
      if (!/\/unit-\d+\/$/.test(a.href) || a.querySelector("img")) continue;
      const img = document.createElement("img");
      img.alt = "";
      img.loading = "lazy";
      img.src = new URL(THUMB, a.href).href;
      a.prepend(img);
      a.classList.add("fg-thumbed");
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", thumbnails);
  else thumbnails();
})();
