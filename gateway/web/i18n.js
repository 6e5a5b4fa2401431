// Chinese and English for the pages. The language is the one the user picked
// (kept in localStorage), else Chinese when the browser prefers Chinese, else
// English. Elements name their text with data-i18n (text), data-i18n-label
// (aria-label and title) and data-i18n-placeholder.

const STORE_KEY = "switchboard.lang";

export function preferredLanguage() {
  const picked = localStorage.getItem(STORE_KEY);
  if (picked === "zh" || picked === "en") return picked;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of wanted) {
    const lower = String(tag).toLowerCase();
    if (lower.startsWith("zh")) return "zh";
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

// dicts: { zh: {key: text}, en: {key: text} }. Text may hold {name}
// placeholders filled from vars.
export function makeI18n(dicts) {
  let lang = preferredLanguage();
  const listeners = [];
  const t = (key, vars = {}) => {
    const text = (dicts[lang] && dicts[lang][key]) ?? dicts.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  };
  const apply = (root = document) => {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
      el.title = t(el.dataset.i18nLabel);
    }
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  };
  const setLanguage = (next) => {
    lang = next;
    localStorage.setItem(STORE_KEY, next);
    apply();
    for (const listener of listeners) listener(next);
  };
  return {
    t,
    apply,
    setLanguage,
    get lang() { return lang; },
    onChange: (listener) => listeners.push(listener),
  };
}

// Wires a <select> of languages to the i18n object.
export function languagePicker(select, i18n) {
  select.value = i18n.lang;
  select.addEventListener("change", () => i18n.setLanguage(select.value));
  i18n.onChange((lang) => { select.value = lang; });
}
