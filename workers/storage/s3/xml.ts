// The little XML the S3 API speaks: parse a response into a tree of elements,
// build a request body with escaped text. Workers have no DOMParser, and S3's
// documents are plain (no DTDs, no mixed content), so a small parser does.

export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

export class XmlError extends Error {
  override name = "XmlError";
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

export function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e]!;
  });
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`);
}

/** Parses a document; namespaces prefixes and attributes are dropped (S3 bodies do not need them). */
export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: "#document", children: [], text: "" };
  const stack: XmlElement[] = [root];
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)([^>]*?)(\/?)>|<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!\[CDATA\[([\s\S]*?)\]\]>/g;
  let last = 0;
  for (let m = tag.exec(source); m; m = tag.exec(source)) {
    const top = stack[stack.length - 1]!;
    top.text += unescapeXml(source.slice(last, m.index));
    last = tag.lastIndex;
    if (m[5] !== undefined) {
      top.text += m[5];
      continue;
    }
    if (!m[2]) continue; // declaration or comment
    const name = m[2].includes(":") ? m[2].slice(m[2].indexOf(":") + 1) : m[2];
    if (m[1]) {
      if (top.name !== name || stack.length === 1) throw new XmlError(`unexpected </${name}>`);
      stack.pop();
    } else {
      const el: XmlElement = { name, children: [], text: "" };
      top.children.push(el);
      if (!m[4]) stack.push(el);
    }
  }
  if (stack.length !== 1) throw new XmlError(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (root.children.length !== 1) throw new XmlError("expected exactly one root element");
  return root.children[0]!;
}

export const child = (el: XmlElement | undefined, name: string) => el?.children.find((c) => c.name === name);
export const childrenNamed = (el: XmlElement | undefined, name: string) => el?.children.filter((c) => c.name === name) ?? [];
/** Text of a direct child, or undefined when it is absent. */
export const textOf = (el: XmlElement | undefined, name: string) => child(el, name)?.text;

/** A builder for request bodies: xml("Rule", [xml("ID", "x")]). Text is escaped. */
export function xml(name: string, content: string | number | (string | undefined)[]): string {
  const inner = Array.isArray(content) ? content.filter((c) => c !== undefined).join("") : escapeXml(String(content));
  return `<${name}>${inner}</${name}>`;
}
