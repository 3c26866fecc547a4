// Pure geometry of attention maps: where key k sits in a cell (a class token and a square grid of
// patches, or a 1 × K strip of tokens), and which key a click hits.

export interface CellLayout {
  /** Columns and rows of the drawn grid of keys. */
  cols: number;
  rows: number;
  /** Keys before the grid (class tokens), drawn as a strip above it; 0 for a plain sequence. */
  lead: number;
}

export function cellLayout(numKeys: number, gridSide: number, classTokens: number): CellLayout {
  if (gridSide > 0 && classTokens + gridSide * gridSide === numKeys) {
    return { cols: gridSide, rows: gridSide, lead: classTokens };
  }
  return { cols: numKeys, rows: 1, lead: 0 };
}

/** The key index at grid cell (col, row) of the layout. */
export function keyAt(layout: CellLayout, col: number, row: number): number {
  return layout.lead + row * layout.cols + col;
}

/** The stored row of query q (null when that query has no row). */
export function queryRow(blocks: readonly number[], q: number): number | null {
  return q >= 0 && q < blocks.length ? blocks[q] : null;
}

/** A short name of token k: "CLS", "patch (r, c)" or "token k". */
export function tokenName(layout: CellLayout, k: number): string {
  if (k < layout.lead) return "class token";
  if (layout.rows > 1) {
    const i = k - layout.lead;
    return `patch (${Math.floor(i / layout.cols)}, ${i % layout.cols})`;
  }
  return `token ${k}`;
}
