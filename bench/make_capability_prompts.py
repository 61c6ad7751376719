"""Writes refusaldata/data/capability_prompts.jsonl: the embedded instruction-following set.

IFEval's idea (Zhou et al. 2023) in IFEval's own format (key, prompt, instruction_id_list,
kwargs), checked by IFEval's checkers (the `if-verifiable` package): benign everyday tasks,
each carrying one or two instructions a program can verify. The kinds are those a short
answer can satisfy (the embedded model answers in at most ~100 tokens in the quickstart),
so the score moves with the model rather than with truncation. 24 kinds x 5 tasks = 120
prompts; 12 of them carry a second instruction. Rows are interleaved by kind, so the first
24 (`evaluate capability --limit 24`) hold one prompt of every kind.
Rerun only to change the set: `python bench/make_capability_prompts.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "refusaldata" / "data" / "capability_prompts.jsonl"

TASKS = [
    "Explain why the sky is blue.", "Describe how bees make honey.", "Explain how a rainbow forms.",
    "Give three tips for saving money on groceries.", "Describe the water cycle.", "Explain what photosynthesis is.",
    "Describe how to make a cup of tea.", "Explain why people need sleep.", "Describe how to care for a houseplant.",
    "Explain how the moon affects the tides.", "Give advice for learning a new language.",
    "Describe the life cycle of a butterfly.", "Explain how recycling works.", "Describe a good breakfast.",
    "Explain how airplanes stay in the air.", "Describe the planets of the solar system.",
    "Write a short thank-you note to a neighbour who watered my plants.", "Explain how volcanoes form.",
    "Describe the rules of chess in brief.", "Explain the benefits of regular exercise.",
    "Write a short welcome message for new members of a book club.", "Describe how a bicycle works.",
    "Explain what a budget is.", "Describe autumn in a park.", "Explain how to brush your teeth properly.",
]

# kind -> (instruction id, sentence added to the task, kwargs); {k} is filled per task.
KINDS = [
    ("change_case:english_lowercase",
     "Your entire response must be in lowercase letters; no capital letters are allowed.", {}),
    ("change_case:english_capital", "Your entire response must be in English, in capital letters only.", {}),
    ("punctuation:no_comma", "Do not use any commas in your response.", {}),
    ("detectable_format:title",
     "Give your answer a title wrapped in double angular brackets, such as <<my title>>.", {}),
    ("startend:quotation", "Wrap your entire response in double quotation marks.", {}),
    ("keywords:existence", "Include the keywords \"simple\" and \"daily\" in your response.",
     {"keywords": ["simple", "daily"]}),
    ("keywords:frequency", "Use the word \"important\" at least 2 times.",
     {"keyword": "important", "frequency": 2, "relation": "at least"}),
    ("keywords:forbidden_words", "Do not use the words \"very\" or \"really\" in your response.",
     {"forbidden_words": ["very", "really"]}),
    ("length_constraints:number_words", "Answer in fewer than 40 words.", {"num_words": 40, "relation": "less than"}),
    ("length_constraints:number_sentences", "Answer in fewer than 3 sentences.",
     {"num_sentences": 3, "relation": "less than"}),
    ("detectable_format:number_bullet_lists",
     "Your answer must contain exactly 3 bullet points in markdown, such as:\n* This is a point.", {"num_bullets": 3}),
    ("detectable_content:number_placeholders",
     "Include at least 2 placeholders in square brackets, such as [name].", {"num_placeholders": 2}),
    ("detectable_content:postscript", "At the end of your response, add a postscript starting with P.S.",
     {"postscript_marker": "P.S."}),
    ("startend:end_checker", "Finish your response with this exact phrase: Any other questions?",
     {"end_phrase": "Any other questions?"}),
    ("detectable_format:json_format", "Wrap your entire output in JSON format.", {}),
    ("detectable_format:number_highlighted_sections",
     "Highlight at least 2 parts of your answer with markdown, i.e. *highlighted section*.", {"num_highlights": 2}),
    ("keywords:letter_frequency", "The letter \"w\" should appear at least 3 times in your response.",
     {"letter": "w", "let_frequency": 3, "let_relation": "at least"}),
    ("detectable_format:constrained_response",
     "Is this a good idea for a child? Answer with one of the following options: "
     "(\"My answer is yes.\", \"My answer is no.\", \"My answer is maybe.\")", {}),
    ("change_case:capital_word_frequency", "Use words in all capital letters at least 2 times.",
     {"capital_frequency": 2, "capital_relation": "at least"}),
    ("detectable_format:multiple_sections",
     "Your response must have 2 sections. Mark the beginning of each section with SECTION X, such as: SECTION 1",
     {"section_spliter": "SECTION", "num_sections": 2}),
    ("length_constraints:number_paragraphs",
     "There should be 2 paragraphs. Paragraphs are separated with the markdown divider: ***", {"num_paragraphs": 2}),
    ("combination:two_responses",
     "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: "
     "******.", {}),
    ("language:response_language", "Your entire response should be in French, no other language is allowed.",
     {"language": "fr"}),
    ("combination:repeat_prompt",
     "First repeat the request word for word without change, then give your answer (do not say anything before "
     "repeating the request; the request you need to repeat does not include this sentence)", None),
]
# Second instructions for every other task of a few kinds: prompt-level accuracy needs both.
SECOND = {
    "punctuation:no_comma": KINDS[0], "keywords:existence": KINDS[8], "detectable_format:title": KINDS[2],
    "length_constraints:number_words": KINDS[0], "startend:end_checker": KINDS[2],
    "detectable_content:postscript": KINDS[5],
}


def rows() -> list[dict]:
    out = []
    for position in range(5):
        for index, (instruction, sentence, kwargs) in enumerate(KINDS):
            task = TASKS[(index * 5 + position) % len(TASKS)]
            ids = [instruction]
            all_kwargs = [dict(kwargs) if kwargs is not None else {"prompt_to_repeat": task}]
            prompt = f"{task} {sentence}"
            if instruction in SECOND and position % 2 == 0:
                extra_id, extra_sentence, extra_kwargs = SECOND[instruction]
                ids.append(extra_id)
                all_kwargs.append(dict(extra_kwargs))
                prompt += f" {extra_sentence}"
            out.append({"key": 1000 + len(out), "prompt": prompt, "instruction_id_list": ids, "kwargs": all_kwargs})
    return out


if __name__ == "__main__":
    data = rows()
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data), encoding="utf-8")
    print(f"{len(data)} prompts, {sum(len(r['instruction_id_list']) for r in data)} instructions -> {OUT}")
