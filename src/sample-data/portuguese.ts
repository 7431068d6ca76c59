/**
 * Word lists and phrase banks for Brazilian Portuguese fashion reviews. Phrases carry
 * placeholders filled per review (see fill() in reviews.ts):
 *   {o}      gender ending of the product: "lind{o}" -> lindo / linda
 *   {um} {esse} {art} {ele}   um/uma, esse/essa, o/a, ele/ela for the product
 *   {P}      the product noun          {cor}  its colour
 *   {N} {N1} a shoe size and the next one      {tam} a clothing size (P, M, G...)
 *   {ocasiao} {pessoa} {dias}
 */

export type Gender = 'm' | 'f';
export type ProductKind = 'shoe' | 'clothing' | 'accessory';

export interface ProductType {
  noun: string;
  gender: Gender;
  kind: ProductKind;
}

export const PRODUCT_TYPES: readonly ProductType[] = [
  { noun: 'sandália', gender: 'f', kind: 'shoe' },
  { noun: 'rasteirinha', gender: 'f', kind: 'shoe' },
  { noun: 'sapatilha', gender: 'f', kind: 'shoe' },
  { noun: 'bota', gender: 'f', kind: 'shoe' },
  { noun: 'tênis', gender: 'm', kind: 'shoe' },
  { noun: 'sapato', gender: 'm', kind: 'shoe' },
  { noun: 'scarpin', gender: 'm', kind: 'shoe' },
  { noun: 'chinelo', gender: 'm', kind: 'shoe' },
  { noun: 'tamanco', gender: 'm', kind: 'shoe' },
  { noun: 'mule', gender: 'f', kind: 'shoe' },
  { noun: 'blusa', gender: 'f', kind: 'clothing' },
  { noun: 'camiseta', gender: 'f', kind: 'clothing' },
  { noun: 'camisa', gender: 'f', kind: 'clothing' },
  { noun: 'calça', gender: 'f', kind: 'clothing' },
  { noun: 'saia', gender: 'f', kind: 'clothing' },
  { noun: 'jaqueta', gender: 'f', kind: 'clothing' },
  { noun: 'regata', gender: 'f', kind: 'clothing' },
  { noun: 'bermuda', gender: 'f', kind: 'clothing' },
  { noun: 'jardineira', gender: 'f', kind: 'clothing' },
  { noun: 'legging', gender: 'f', kind: 'clothing' },
  { noun: 'vestido', gender: 'm', kind: 'clothing' },
  { noun: 'casaco', gender: 'm', kind: 'clothing' },
  { noun: 'short', gender: 'm', kind: 'clothing' },
  { noun: 'macacão', gender: 'm', kind: 'clothing' },
  { noun: 'moletom', gender: 'm', kind: 'clothing' },
  { noun: 'biquíni', gender: 'm', kind: 'clothing' },
  { noun: 'maiô', gender: 'm', kind: 'clothing' },
  { noun: 'pijama', gender: 'm', kind: 'clothing' },
  { noun: 'blazer', gender: 'm', kind: 'clothing' },
  { noun: 'cropped', gender: 'm', kind: 'clothing' },
  { noun: 'suéter', gender: 'm', kind: 'clothing' },
  { noun: 'body', gender: 'm', kind: 'clothing' },
  { noun: 'bolsa', gender: 'f', kind: 'accessory' },
  { noun: 'mochila', gender: 'f', kind: 'accessory' },
  { noun: 'carteira', gender: 'f', kind: 'accessory' },
  { noun: 'pochete', gender: 'f', kind: 'accessory' },
  { noun: 'cinto', gender: 'm', kind: 'accessory' },
  { noun: 'chapéu', gender: 'm', kind: 'accessory' },
  { noun: 'lenço', gender: 'm', kind: 'accessory' },
  { noun: 'colar', gender: 'm', kind: 'accessory' },
];

export const COLOURS = [
  'pret{o}', 'branc{o}', 'vermelh{o}', 'amarel{o}', 'azul', 'verde', 'rosa', 'nude', 'bege', 'caramelo',
  'vinho', 'cinza', 'marrom', 'off white', 'estampad{o}', 'listrad{o}', 'floral', 'azul marinho', 'verde militar', 'dourad{o}',
];

export const OCCASIONS = [
  'uma festa', 'o trabalho', 'um casamento', 'o dia a dia', 'a praia', 'uma viagem', 'o réveillon', 'a formatura',
  'o aniversário da minha mãe', 'a academia', 'um batizado', 'o natal', 'sair à noite', 'um jantar',
];

export const PEOPLE = [
  'minha filha', 'minha mãe', 'minha irmã', 'meu marido', 'minha namorada', 'meu filho', 'mim mesma', 'uma amiga',
  'minha sogra', 'minha avó', 'meu namorado', 'minha esposa',
];

export const CLOTHING_SIZES = ['PP', 'P', 'M', 'G', 'GG'];

/** Neutral first sentences: they say what was bought, not what the buyer thinks of it. */
export const OPENINGS = [
  '{esse} {P} {cor}',
  'Comprei {um} {P} {cor} para {ocasiao}',
  'Comprei para {pessoa}',
  'Comprei de presente para {pessoa}',
  'Recebi {art} {P} ontem',
  'Chegou em {dias} dias',
  'Segunda vez que compro aqui',
  'Primeira compra na loja',
  'Usei {art} {P} para {ocasiao}',
  'Comprei na promoção',
  'Estava procurando {um} {P} {cor} faz tempo',
  'Vi {art} {P} no instagram',
];

/** Clearly positive clauses. */
export const POSITIVE = [
  'é maravilhos{o}', 'é muito lind{o}', 'ficou perfeit{o}', 'amei', 'simplesmente amei', 'adorei', 'o tecido é ótimo',
  'tecido de ótima qualidade', 'super confortável', 'muito confortável', 'veio bem embalad{o}', 'chegou antes do prazo',
  'entrega super rápida', 'recomendo', 'recomendo muito', 'vale muito a pena', 'vale cada centavo', 'caimento perfeito',
  'a cor é igual à da foto', 'superou minhas expectativas', 'comprarei novamente', 'já quero outr{o}', 'serviu certinho',
  'acabamento impecável', 'ótimo custo benefício', 'produto excelente', 'estou muito satisfeita', 'todo mundo elogiou',
  'material de primeira', 'lind{o} demais', 'melhor compra do ano', 'gostei muito', 'fiquei apaixonada', 'valeu a pena',
  'costura bem feita', 'macio e leve', 'fresquinh{o} para o verão', 'não me arrependo', 'parece de loja cara',
  'exatamente como na foto', 'cheguei a comprar outra cor', 'uso todo dia', 'chique e elegante', 'maravilhos{o}',
  'é um luxo', 'nota mil', 'que qualidade', 'perfeit{o} para {ocasiao}', 'não sai do meu pé', 'fiquei encantada',
];

/** Clearly negative clauses. */
export const NEGATIVE = [
  'veio com defeito', 'o tecido é horrível', 'a costura soltou', 'descosturou na primeira semana', 'muito diferente da foto',
  'péssima qualidade', 'não recomendo', 'chegou atrasado', 'a entrega atrasou mais de {dias} dias', 'desbotou na primeira lavagem',
  'quero meu dinheiro de volta', 'me arrependi', 'veio manchad{o}', 'o material parece plástico', 'fiquei decepcionada',
  'decepcionante', 'não vale o preço', 'horrível', 'muito ruim', 'tecido fino e transparente', 'o zíper quebrou',
  'a sola descolou', 'cheiro forte de cola', 'não parece nada com a foto', 'dinheiro jogado fora', 'nunca mais compro',
  'produto de quinta', 'propaganda enganosa', 'atendimento péssimo', 'ninguém responde no chat', 'pedi a troca e até agora nada',
  'não gostei', 'veio rasgad{o}', 'machucou meu pé', 'encolheu depois de lavar', 'soltou tinta na minha roupa',
  'a cor não tem nada a ver', 'fiquei muito chateada', 'parece usad{o}', 'péssim{o}', 'veio a cor errada',
  'a alça arrebentou', 'o acabamento é malfeito', 'não serviu em ninguém', 'veio sujo', 'que decepção',
];

/** Mild complaints that happy buyers still mention (4 stars), and mild praise in unhappy reviews. */
export const MILD_NEGATIVE = [
  'só a entrega demorou um pouco', 'a cor é um pouco diferente da foto', 'achei o tecido um pouco fino',
  'poderia ser mais barat{o}', 'a embalagem veio amassada', 'demorou um pouco para chegar', 'amassa fácil',
  'o forro é meio simples',
];

export const MILD_POSITIVE = ['a cor é bonita', 'a entrega foi rápida', 'o preço é bom', 'bonit{o} na foto', 'o modelo é lindo'];

/** Lukewarm clauses (3 stars). */
export const NEUTRAL = [
  'é ok', 'mais ou menos', 'esperava mais', 'razoável', 'nada demais', 'pelo preço tá bom', 'é bonitinh{o} mas simples',
  'cumpre o que promete', 'não é ruim mas também não é ótim{o}', 'dá para usar', 'achei normal', 'é o que parece',
];

/** Size and fit remarks: they appear at every rating, so they say little about sentiment. */
export const FIT_SHOE = [
  'calço {N} e esse número ficou pequeno', 'tive que trocar por {N1}', 'a numeração é pequena', 'compre um número maior',
  'a forma é grande', 'calço {N} e serviu certinho', 'pedi {N} e ficou folgado', 'a forma é pequena, peça um número acima',
];

export const FIT_CLOTHING = [
  'pedi {tam} e ficou grande', 'ficou um pouco apertad{o}', 'veste bem', 'a modelagem é pequena', 'peça um tamanho acima',
  'uso {tam} e serviu', 'o comprimento é bom', 'ficou larg{o} na cintura',
];

export const FIT_ACCESSORY = ['é maior do que parece', 'é menor do que eu imaginava', 'cabe bastante coisa', 'o tamanho é bom'];

export const CLOSINGS_POSITIVE = ['Amei!', 'Recomendo!', 'amei ameeeei', 'Nota 10!', 'Perfeito!!', 'Obrigada!', 'Super recomendo', 'Voltarei a comprar'];
export const CLOSINGS_NEGATIVE = ['Não comprem!', 'Decepção total.', 'Péssimo!!!', 'Não recomendo.', 'Quero devolver', 'Que raiva'];
export const CLOSINGS_NEUTRAL = ['É isso.', 'Vamos ver com o uso.', 'Ok.'];

export const EMOJI_POSITIVE = ['😍', '❤️', '👏', '🥰', '😊'];
export const EMOJI_NEGATIVE = ['😡', '😤', '👎', '😭', '🤬'];
export const EMOJI_NEUTRAL = ['😐', '🤔'];

/** Connectors from praise to complaint, and from complaint to praise. */
export const BUT_THEN_COMPLAINT = ['mas', 'porém', 'só que', 'mas infelizmente'];
export const BUT_THEN_PRAISE = ['mas', 'pelo menos', 'apesar disso', 'em compensação'];
