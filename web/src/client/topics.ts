/** NATS-style topic patterns: `*` matches one token, a final `>` matches one or more. */

export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  const want = pattern.split(".");
  const have = topic.split(".");
  for (let i = 0; i < want.length; i++) {
    const token = want[i];
    if (token === ">") return i === want.length - 1 && have.length > i;
    if (i >= have.length) return false;
    if (token !== "*" && token !== have[i]) return false;
  }
  return want.length === have.length;
}
