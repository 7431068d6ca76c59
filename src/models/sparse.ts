/**
 * Sparse feature vectors as the models take them: ascending indices into an n-wide space and
 * their values, the shape `word_counts` has online (JSON `{size, indices, values}`) and offline
 * (a struct of int32 and float32 lists). Models never densify them: a 62,000-word vocabulary
 * times a million reviews would not fit.
 */
export interface SparseVector {
  size: number;
  indices: ArrayLike<number>;
  values: ArrayLike<number>;
}

/** Checks a vector against the width a model was trained on; a message naming what is wrong otherwise. */
export function checkSparse(v: SparseVector, size: number, what: string): void {
  if (v.size !== size) throw new Error(`${what}: a sparse vector of size ${v.size}, the model takes size ${size}`);
  if (v.indices.length !== v.values.length) throw new Error(`${what}: ${v.indices.length} indices but ${v.values.length} values`);
  let previous = -1;
  for (let i = 0; i < v.indices.length; i++) {
    const index = v.indices[i]!;
    if (!Number.isInteger(index) || index <= previous || index >= size) throw new Error(`${what}: indices must be ascending integers below ${size}, got ${index} at ${i}`);
    previous = index;
  }
}
