/** The value of a quantity, or undefined when the text is not one. */
export declare function parseQuantity(text: string | number): number | undefined;
/** Whether two quantities are equal, within floating point rounding. */
export declare function sameQuantity(a: string | number, b: string | number): boolean;
