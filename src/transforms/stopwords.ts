/**
 * Stop-word lists: the most common function words of Portuguese (~210) and English (~150),
 * written in their usual spelling and folded like tokens at first use ("é" -> "e", "está" -> "esta").
 * Negations are deliberately NOT stop words, because they carry the sentiment of a review:
 * não, nem, nunca, jamais, nada, ninguém, sem; no, nor, not, never and the n't stems (don, didn...).
 */
import { normalizeWord } from './tokenize.js';

export type StopWordList = 'pt' | 'en' | 'pt+en';

const PORTUGUESE = `
a à ao aos aquela aquelas aquele aqueles aquilo aqui aí lá as às até cada com como contra da das de
dela delas dele deles depois desde do dos durante e é ela elas ele eles em entre era eram éramos essa
essas esse esses esta está estamos estão estar estas estava estavam estávamos este esteja estejam
estejamos estes esteve estive estivemos estiver estivera estiveram estiverem estivermos estivesse
estivessem estivéssemos estou eu foi fomos for fora foram forem formos fosse fossem fôssemos fui há
haja hajam hajamos hão havemos haver hei houve houvemos houver houvera houveram houverei houverem
houveremos houveria houveriam houvermos houverá houverão houveríamos houvesse houvessem houvéssemos
isso isto já lhe lhes mais mas me mesmo mesma meu meus minha minhas muito muita muitos muitas na nas
no nos nós nossa nossas nosso nossos num numa o onde os ou outra outras outro outros para pela pelas
pelo pelos pois por porque pra pras pro pros qual quais quando que quem são se seja sejam sejamos ser
será serão serei seremos seria seriam seríamos seu seus só somos sou sua suas também te tem têm temos
tenha tenham tenhamos tenho ter terá terão terei teremos teria teriam teríamos teu teus teve tinha
tinham tínhamos tive tivemos tiver tivera tiveram tiverem tivermos tivesse tivessem tivéssemos toda
todas todo todos tu tua tuas um uma umas uns vai vão você vocês vos vou então ainda assim sobre
`;

const ENGLISH = `
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her
hers herself it its itself they them their theirs themselves what which who whom this that these
those am is are was were be been being have has had having do does did doing a an the and but if or
because as until while of at by for with about against between into through during before after
above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such only own same so than too very s t can will
just should now d ll m o re ve y also would could shall may might must let us get got
`;

const split = (text: string): string[] => text.split(/\s+/).filter(Boolean);

/** The raw lists as written, for documentation and tests. */
export const STOP_WORDS: Readonly<Record<'pt' | 'en', readonly string[]>> = Object.freeze({
  pt: Object.freeze(split(PORTUGUESE)),
  en: Object.freeze(split(ENGLISH)),
});

const sets = new Map<StopWordList, ReadonlySet<string>>();

/** The folded set of a built-in list (built once, lazily: the tokenizer folds it). */
export function stopWordSet(list: StopWordList): ReadonlySet<string> {
  let set = sets.get(list);
  if (!set) {
    const words = list === 'pt' ? STOP_WORDS.pt : list === 'en' ? STOP_WORDS.en : list === 'pt+en' ? [...STOP_WORDS.pt, ...STOP_WORDS.en] : undefined;
    if (!words) throw new RangeError(`tokenize: stopWords must be 'pt', 'en', 'pt+en', false or a Set, got '${String(list)}'`);
    set = new Set(words.flatMap(normalizeWord));
    sets.set(list, set);
  }
  return set;
}
