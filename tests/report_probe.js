// Injected at the end of a copy of the Snakemake HTML report by tests/test_report_browser.py and
// run by headless Chromium (--dump-dom). It reads the page as a reader would: the landing page,
// then every category -> subcategory -> result through the report's own navigation, showing
// each result the way its "eye" button does, and writes what it saw as JSON into
// <pre id="probe-result">.
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = { landing: {}, results: {}, errors: [] };
  window.addEventListener("error", (ev) => out.errors.push(String(ev.message)));
  const done = () => {
    const pre = document.createElement("pre");
    pre.id = "probe-result";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  };
  try {
    await sleep(200);
    // ---- landing page: the global description (workflow.rst)
    const text = document.body.innerText;
    out.landing.found_at = text.indexOf("What this run found");
    out.landing.config_at = text.indexOf("Run configuration");
    out.landing.has_comparison_table = !!document.querySelector("table.comparison");
    out.landing.comparison_rows = document.querySelectorAll("table.comparison tbody tr").length;
    const thumbs = Array.from(document.querySelectorAll("img[alt]")).filter((im) =>
      im.src.startsWith("data:image/png")
    );
    for (const im of thumbs) {
      if (!im.complete) await im.decode().catch(() => {});
    }
    out.landing.thumbnails = thumbs.map((im) => ({
      alt: im.alt,
      width: im.naturalWidth,
      height: im.naturalHeight,
      link: im.closest("a") ? im.closest("a").getAttribute("href") : null,
    }));
    out.landing.json_blocks = document.querySelectorAll("pre.code.json, pre.json").length;
    out.landing.text_length = text.length;

    // ---- every result, through the navigation
    const inkOf = async (uri) => {
      const im = new Image();
      im.src = uri;
      await im.decode();
      const w = Math.min(im.naturalWidth, 800);
      const h = Math.round((im.naturalHeight * w) / im.naturalWidth);
      const cv = document.createElement("canvas");
      cv.width = w;
      cv.height = h;
      const ctx = cv.getContext("2d");
      ctx.drawImage(im, 0, 0, w, h);
      const px = ctx.getImageData(0, 0, w, h).data;
      let ink = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] + px[i + 1] + px[i + 2] < 3 * 255 - 30 && px[i + 3] > 0) ink++;
      }
      return { width: im.naturalWidth, height: im.naturalHeight, ink: ink / (w * h) };
    };
    for (const category of Object.keys(categories)) {
      app.showCategory(category);
      await sleep(50);
      for (const subcategory of Object.keys(categories[category])) {
        app.setView({ navbarMode: "subcategory", category: category, subcategory: subcategory });
        await sleep(50);
        const menu = document.body.innerText;
        for (const path of categories[category][subcategory]) {
          const entry = results[path];
          const rec = {
            category: category,
            subcategory: subcategory,
            mime: entry.mime_type,
            listed: menu.includes(entry.name) ||
              Object.values(entry.labels || {}).some((v) => menu.includes(String(v))),
          };
          // what the result's eye button does
          if (entry.mime_type.startsWith("image/")) {
            app.setView({ content: "img", contentPath: entry.data_uri, resultPath: path });
            await sleep(50);
            const shown = Array.from(document.querySelectorAll("img")).find(
              (im) => im.getAttribute("src") === entry.data_uri
            );
            rec.shown = !!shown;
            if (shown && !shown.complete) await shown.decode().catch(() => {});
            rec.shown_width = shown ? shown.naturalWidth : 0;
            Object.assign(rec, await inkOf(entry.data_uri));
          } else {
            const body = await (await fetch(entry.data_uri)).text();
            rec.bytes = body.length;
            rec.lines = body.split("\n").filter((l) => l.trim()).length;
          }
          rec.caption_length = (entry.caption || "").length;
          out.results[path] = rec;
        }
      }
    }
  } catch (err) {
    out.errors.push(String(err && err.stack ? err.stack : err));
  }
  done();
})();
