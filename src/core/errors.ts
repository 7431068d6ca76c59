/** An error a user caused and can fix: printed as one line by the CLI, a 4xx by the server. */
export class LarderError extends Error {
  constructor(
    message: string,
    /** Machine-readable detail for HTTP bodies (the field path, the allowed values...). */
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'LarderError';
  }
}

/** A definition is invalid: the message names the file and the object. */
export class DefinitionError extends LarderError {
  override name = 'DefinitionError';
}

/** Input to a command or request is invalid: the message names the field. */
export class InputError extends LarderError {
  override name = 'InputError';
}

/** A breaking registry change was refused. */
export class BreakingChangeError extends LarderError {
  override name = 'BreakingChangeError';
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
