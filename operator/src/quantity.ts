// Kubernetes resource quantities ("100m", "0.1", "128Mi", "1e3"), parsed to numbers so that the
// operator can tell that "0.5" it asked for and "500m" the API server stored are the same.
const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/** The value of a quantity, or undefined when the text is not one. */
export function parseQuantity(text: string | number): number | undefined {
  if (typeof text === 'number') return text;
  const m = QUANTITY.exec(text.trim());
  if (!m) return undefined;
  const [, number, exponent, suffix] = m;
  if (exponent) return Number(`${number}${exponent}`);
  const factor = SUFFIX[suffix ?? ''];
  return factor === undefined ? undefined : Number(number) * factor;
}

/** Whether two quantities are equal, within floating point rounding. */
export function sameQuantity(a: string | number, b: string | number): boolean {
  const x = parseQuantity(a);
  const y = parseQuantity(b);
  if (x === undefined || y === undefined) return false;
  return x === y || Math.abs(x - y) <= Math.max(Math.abs(x), Math.abs(y)) * 1e-12;
}
