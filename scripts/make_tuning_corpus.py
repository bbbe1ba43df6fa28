"""Make ``data/tuning/corpus.jsonl``: a small, programmatically generated instruction-tuning corpus.

The corpus teaches a small pre-trained model (Gemma 3 270M base, LoRA, ~1 epoch on CPU) to
follow an instruction: answer directly and briefly, then stop (the trainer appends EOS), give a
list for list tasks, one label for classification, the right number for easy arithmetic, code
in a fence for coding tasks, only the translation for translation tasks.

Ten task types, about 140 records each before filtering: ``open_writing``, ``rewriting``,
``summarising``, ``classification``, ``extraction``, ``brainstorming``, ``math``, ``coding``,
``translation``, ``factual_qa``. Each task has several paraphrase templates for its instruction.
Record format (read by :func:`tuneshift.tuning.corpus.load_corpus`), one JSON object a line::

    {"id": "<task>_<nnnn>", "task": "<task>", "instruction": "...", "input": "..."?, "response": "..."}

Sources:

* Hand-written in this script: every template, word bank and phrase table -- names, cities,
  notes, invitations, place descriptions, slogans, review/headline/summary paragraph templates,
  brainstorming lists, arithmetic word-problem templates, the Python function table, the
  English->French/Spanish/German phrase table, capital cities and science facts.
* Princeton WordNet 3.0 (Debian package ``wordnet-base``, read from ``/usr/share/wordnet`` with
  NLTK's ``WordNetCorpusReader``, no NLTK download): example sentences (``Synset.examples()``)
  for spelling correction (typos injected programmatically), capitalisation and
  question/statement classification; glosses (``Synset.definition()``) of a hand-written list
  of common words for definition questions. ``wordfreq`` (a tuneshift dependency) keeps only
  example sentences made of common words.

Decontamination: a record is dropped (and counted) when its ``instruction + input + response``
shares a word 8-gram (:func:`tuneshift.tuning.corpus.word_ngrams`) with any evaluation text:
every ``prompt`` of ``tuneshift/data/bundled/demo_prompts.jsonl``, every ``instruction`` (+ ``input``)
of ``tuneshift/data/bundled/following_eval.jsonl`` (the held-out instruction-following set), and every
prompt of the paper's ``FinalDataset.tsv`` when found (``--paper-tsv``, else
``../shared/paper/datasets/FinalDataset.tsv`` relative to the repository, else
``/work/shared/paper/datasets/FinalDataset.tsv``). Identical records are de-duplicated.

Deterministic: one ``random.Random(seed)`` (default seed 20240501); running it twice gives
byte-identical output. Prints per task: generated, duplicates, dropped for overlap, written.

Run (needs ``apt-get install wordnet-base``; nltk and wordfreq are in the venv)::

    .venv/bin/python scripts/make_tuning_corpus.py [--out data/tuning/corpus.jsonl] [--seed 20240501]
        [--per-task 140] [--paper-tsv PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tuneshift.tuning.corpus import user_text, word_ngrams  # noqa: E402

WORDNET_DIR = "/usr/share/wordnet"
DEFAULT_SEED = 20240501
TASKS = ["open_writing", "rewriting", "summarising", "classification", "extraction",
         "brainstorming", "math", "coding", "translation", "factual_qa"]

# ---------------------------------------------------------------------------------------------
# Shared word banks (hand-written)
# ---------------------------------------------------------------------------------------------

NAMES = ["Anna", "Ben", "Carlos", "Diana", "Ella", "Farid", "Grace", "Hugo", "Isla", "Jack", "Kofi",
         "Lena", "Marco", "Nadia", "Omar", "Paula", "Rosa", "Sam", "Tariq", "Victor", "Wendy",
         "Yusuf", "Zoe", "Liam", "Sofia", "Noah", "Amara", "Leo", "Hana", "Ivan", "Julia", "Kai",
         "Maya", "Nina", "Oscar", "Ruby", "Theo", "Ada", "Felix", "Clara"]
SURNAMES = ["Smith", "Garcia", "Khan", "Novak", "Okafor", "Larsen", "Rossi", "Tanaka", "Brown",
            "Silva", "Patel", "Moreau", "Schmidt", "Kowalski", "Nguyen", "Haddad", "Ortiz",
            "Murphy", "Jensen", "Costa", "Mensah", "Fischer"]
CITIES = ["Paris", "Lisbon", "Nairobi", "Oslo", "Lima", "Dublin", "Cairo", "Seoul", "Prague",
          "Sydney", "Chicago", "Mumbai", "Bogota", "Warsaw", "Athens", "Montreal", "Cape Town",
          "Istanbul", "Bangkok", "Edinburgh", "Hamburg", "Osaka", "Denver", "Manila"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
TIMES = ["9 am", "10 am", "11 am", "noon", "2 pm", "3 pm", "4 pm", "5 pm", "6 pm", "7 pm"]
NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def possessive(name: str) -> str:
    return name + "'" if name.endswith("s") else name + "'s"


def pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# ---------------------------------------------------------------------------------------------
# open_writing
# ---------------------------------------------------------------------------------------------

NOTE_SITUATIONS = [
    (["saying you will be home late tonight", "to let them know you will be late home this evening"],
     "I will be home late tonight because {late}. Please eat without me, and I will warm up my dinner when I get back.",
     {"late": ["my train is delayed", "I have to finish a report at work", "the traffic is very heavy",
               "my evening class runs until eight"]}),
    (["asking to borrow their {item}", "asking if you can borrow their {item} on {day}"],
     "Could I borrow your {item} on {day}? I need it {use}. I will bring it back the same evening and take good care of it.",
     {"item|use": [("ladder", "to clean the gutters"), ("bicycle", "to ride to the market"),
                   ("drill", "to put up a shelf"), ("tent", "for a weekend camping trip"),
                   ("lawn mower", "to cut the grass"), ("camera", "for my cousin's wedding")]}),
    (["thanking them for the {gift}", "to thank them for the {gift} they gave you"],
     "Thank you so much for the {gift}. {gline} It was very kind of you to think of me.",
     {"gift|gline": [("scarf", "It is warm and soft, and I have worn it every day this week."),
                     ("cookbook", "I have already tried two of the recipes, and both were delicious."),
                     ("mug", "I drink my tea from it every morning."),
                     ("board game", "We played it with the whole family last night and laughed a lot."),
                     ("flowers", "They look lovely on my kitchen table."),
                     ("novel", "I started reading it last night and could not put it down.")]}),
    (["reminding them about the meeting on {day}", "as a reminder of {day}'s meeting"],
     "Just a reminder that our meeting is on {day} at {time} in {room}. Please bring {thing}. See you there!",
     {"room": ["Room 4", "the small conference room", "the library", "the main office"],
      "thing": ["your notes from last week", "a copy of the budget", "your laptop", "any questions you have"]}),
    (["apologising for missing their party", "to say sorry for not coming to their party"],
     "I am sorry I missed your party on {day}. {miss} I hope you had a wonderful evening, and I would love to hear all about it soon.",
     {"miss": ["I had a bad cold and stayed in bed.", "My flight was cancelled and I got home very late.",
               "I had to work an extra shift.", "My car broke down on the way."]}),
    (["congratulating them on their new job as a {job}", "to congratulate them on becoming a {job}"],
     "Congratulations on your new job as a {job}! You worked hard for this, and you really deserve it. I wish you a great first week.",
     {"job": ["nurse", "teacher", "chef", "pilot", "librarian", "web designer", "firefighter", "lawyer"]}),
    (["welcoming them to the street", "to welcome them as new neighbours"],
     "Welcome to the street! We live at number {num}. If you need anything, such as {help}, just knock on our door.",
     {"num": ["4", "12", "17", "23", "31"],
      "help": ["a ladder or some tools", "advice about the bin days", "the name of a good plumber",
               "a cup of sugar"]}),
    (["wishing them a quick recovery", "to wish them well while they are ill"],
     "I was sorry to hear that you are unwell. Rest, drink plenty of fluids and do not worry about {worry}. We all miss you and hope you feel better soon.",
     {"worry": ["work", "the garden", "the school project", "the football team"]}),
]
SIGNOFFS = ["Best wishes", "Thanks", "See you soon", "Love", "Kind regards", "Cheers"]
NOTE_TEMPLATES = ["Write a short note to {to} {purpose}.", "Write a brief note to {to} {purpose}.",
                  "Draft a quick message to {to} {purpose}.", "Can you write a short message to {to} {purpose}?",
                  "Compose a two- or three-sentence note to {to} {purpose}."]

INVITATIONS = [
    ("a picnic in the park", "in Riverside Park", "Bring a blanket and your favourite snack."),
    ("a board game evening", "at my flat", "There will be snacks, drinks and plenty of games."),
    ("my graduation party", "at my parents' house", "There will be food, music and cake."),
    ("a housewarming party", "at our new home on Hill Road", "Come and see the new place and meet the neighbours."),
    ("a movie night", "in my living room", "I will make popcorn, so just bring yourself."),
    ("a summer barbecue", "in our back garden", "We will grill burgers and vegetables."),
    ("a farewell lunch for Ms Silva", "at the Green Olive restaurant", "Let's give her a warm send-off before she retires."),
    ("a charity quiz night", "at the community hall", "Teams of four are welcome, and prizes go to the top three."),
]
INVITE_TEMPLATES = ["Write a short invitation to {event} on {day} at {time}.",
                    "Draft a brief invitation for {event}. It is on {day} at {time}.",
                    "Create an invitation message: {event}, {day}, {time}.",
                    "Write an invitation asking friends to come to {event} on {day} at {time}."]

PLACES = {
    "a beach on a summer day": [
        ["The beach stretches for miles under a bright blue sky.", "Golden sand glitters in the hot afternoon sun.",
         "The beach is crowded with families, towels and colourful umbrellas."],
        ["Waves roll gently onto the shore while gulls call overhead.", "Children build sandcastles near the water's edge.",
         "The salty breeze carries the smell of sun cream and grilled corn."],
        ["It is the perfect place to forget about work for a while.", "As evening comes, the sky turns orange and pink.",
         "Everyone seems relaxed and happy."]],
    "a forest in autumn": [
        ["The forest glows with red, orange and yellow leaves.", "Tall oaks and maples stand in the cool autumn air.",
         "A thick carpet of fallen leaves covers the path."],
        ["Leaves crunch under every step, and squirrels hurry to hide their nuts.",
         "Mushrooms push up through the damp earth.", "A light mist drifts between the trunks in the morning."],
        ["It is quiet, calm and full of colour.", "The air smells of wet wood and earth.",
         "It feels like the whole forest is getting ready for winter."]],
    "a busy market": [
        ["The market is packed with stalls selling fruit, fish, spices and clothes.",
         "Rows of bright awnings fill the town square.", "Crowds of shoppers squeeze between the stalls."],
        ["Sellers shout out their prices, and customers bargain loudly.",
         "The smell of fresh bread and roasting nuts fills the air.", "Piles of oranges, peppers and melons shine in the sun."],
        ["It is noisy, colourful and full of life.", "There is something new to see at every corner.",
         "Nobody leaves without a full bag."]],
    "a small café in the morning": [
        ["The little café is warm and smells of fresh coffee.", "Sunlight falls across the wooden tables of the small café.",
         "The café has only six tables and a long counter."],
        ["The coffee machine hisses while the owner greets regular customers by name.",
         "People read newspapers and chat quietly over their croissants.", "A tray of warm pastries sits next to the till."],
        ["It is a peaceful place to start the day.", "Many customers stay much longer than they planned.",
         "It feels more like a living room than a shop."]],
    "a snowy mountain village": [
        ["The village sits high in the mountains under a thick blanket of snow.",
         "Wooden houses with steep roofs line the narrow street.", "Snow-covered peaks rise all around the tiny village."],
        ["Smoke curls from the chimneys, and lights glow in every window.",
         "Children pull sledges down the main road.", "The only sound is the crunch of boots in the snow."],
        ["It looks like a picture on a holiday card.", "The air is cold, clean and very still.",
         "Visitors come here to ski and to rest."]],
    "a quiet garden at night": [
        ["The garden is dark and still under a full moon.", "Silver moonlight falls across the lawn and the flower beds.",
         "The garden is quiet now that the day is over."],
        ["Crickets chirp in the grass, and a cool breeze moves the leaves.", "The smell of roses and damp soil hangs in the air.",
         "An owl hoots somewhere in the trees."],
        ["It is the most peaceful time of the day.", "Everything feels calm and safe.",
         "It is a lovely place to sit and think."]],
    "a school playground at break time": [
        ["The playground is full of children as soon as the bell rings.", "The playground fills with noise the moment break begins.",
         "Hundreds of pupils rush out into the playground."],
        ["Some play football, others skip rope or chase each other.", "Groups of friends share snacks on the benches.",
         "A teacher with a whistle watches from the corner."],
        ["The air is full of shouting and laughter.", "For fifteen minutes, nobody thinks about lessons.",
         "When the bell rings again, the playground is suddenly empty."]],
    "a kitchen during a family dinner": [
        ["The kitchen is warm and crowded with family.", "Pots bubble on every ring of the cooker.",
         "The long kitchen table is set for ten people."],
        ["Everyone talks at once while the dishes are passed around.", "The smell of roast potatoes and garlic fills the room.",
         "Grandma stirs the soup and tells everyone to sit down."],
        ["It is loud, busy and full of love.", "Nobody is in a hurry to leave the table.",
         "It is the best evening of the week."]],
    "an old lighthouse by the sea": [
        ["The old lighthouse stands alone on a rocky point.", "The white lighthouse rises above the grey sea.",
         "The lighthouse is tall, narrow and painted with red stripes."],
        ["Waves crash against the rocks below it.", "Its lamp sweeps across the water every few seconds.",
         "Seabirds nest on the ledges of the cliff beside it."],
        ["It has warned ships of danger for many years.", "It looks lonely but strong.",
         "Visitors climb its spiral stairs for the view."]],
    "a city street in the rain": [
        ["Rain pours down on the busy city street.", "The street shines with puddles and reflected lights.",
         "Umbrellas of every colour fill the pavement."],
        ["Cars splash through the water, and buses hiss to a stop.", "People hurry into shops and doorways to stay dry.",
         "Water gushes from the gutters into the drains."],
        ["The whole city seems to move a little faster.", "It is grey and wet, but full of movement.",
         "Soon the cafés fill up with damp customers."]],
}
PLACE_TEMPLATES = ["Describe {p} in one paragraph.", "Write a short paragraph describing {p}.",
                   "In three sentences, describe {p}.", "Give me a brief description of {p}.",
                   "Write a few sentences that describe {p}."]

SLOGANS = {
    "a bicycle shop": ["Pedal further, smile wider.", "Two wheels, endless adventures.", "Ride better with us."],
    "a coffee shop": ["Great days start with great coffee.", "Your daily cup of happiness.", "Fresh beans, warm smiles."],
    "a toothpaste brand": ["Smile brighter every day.", "Fresh breath, strong teeth.", "Clean teeth, confident smile."],
    "a running shoe": ["Run lighter, run longer.", "Every step counts.", "Built for the extra mile."],
    "a pizza restaurant": ["Hot, fresh and made for sharing.", "Every slice made with love.", "Pizza the way it should be."],
    "a gym": ["Stronger every day.", "Your goals, our mission.", "Sweat today, shine tomorrow."],
    "an ice cream shop": ["Life is better with a scoop.", "Cool treats for warm hearts.", "Happiness in every cone."],
    "a bookshop": ["Find your next favourite story.", "Every book is a new world.", "Read more, live more."],
    "a cleaning service": ["We clean, you relax.", "Sparkling homes, happy people.", "A cleaner home without the work."],
    "a solar panel company": ["Power your home with sunshine.", "Clean energy from your own roof.", "Let the sun pay your bills."],
    "a dog-walking service": ["Happy dogs, happy owners.", "Every dog deserves a good walk.", "We walk, they wag."],
    "a recycling campaign": ["Sort it, don't waste it.", "Give your rubbish a second life.", "Recycle today for a cleaner tomorrow."],
}
SLOGAN_TEMPLATES = ["Write a slogan for {x}.", "Write a catchy slogan for {x}.", "Suggest a short slogan for {x}.",
                    "Give me a one-line slogan for {x}.", "Create a motto for {x}. Keep it short."]

FORECASTS = [
    ("sunny", "It will be sunny all day, with a high of {t} degrees.", "Don't forget your sunglasses and sun cream."),
    ("rainy", "Expect steady rain for most of the day and a high of {t} degrees.", "Take an umbrella if you go out."),
    ("windy", "Strong winds will blow all day, with a high of {t} degrees.", "Hold on to your hat and secure loose objects outside."),
    ("snowy", "Snow will fall through the morning, and the high will be only {t} degrees.", "Drive carefully and wear warm boots."),
    ("cloudy", "Grey clouds will cover the sky, with a high of {t} degrees.", "It is a good day for a museum visit."),
    ("stormy", "Thunderstorms are likely in the afternoon, with a high of {t} degrees.", "Stay indoors if you hear thunder."),
]
FORECAST_TEMPS = {"sunny": (22, 34), "rainy": (8, 18), "windy": (6, 16), "snowy": (-6, 1), "cloudy": (10, 19), "stormy": (15, 26)}
FORECAST_TEMPLATES = ["Write a short weather forecast for {city} for tomorrow. It will be {cond}.",
                      "Write a two-sentence weather report for {city}: tomorrow will be {cond}.",
                      "Give a brief forecast for {city} tomorrow. The weather will be {cond}."]

BIO_JOBS = ["nurse", "teacher", "baker", "engineer", "photographer", "gardener", "journalist", "architect", "vet", "chef"]
BIO_HOBBIES = ["hiking", "painting", "playing chess", "cooking for friends", "swimming", "reading detective novels",
               "playing the guitar", "growing tomatoes", "running marathons", "birdwatching"]
BIO_TEMPLATES = ["Write a one-sentence introduction of {name}, a {job} from {city} who enjoys {hobby}.",
                 "Write a short bio: {name}, {job}, lives in {city}, hobby: {hobby}.",
                 "Introduce {name} in one sentence. {name} is a {job} in {city} and likes {hobby}."]


def _fill_situation(rng, slots):
    vals = {}
    for key, options in slots.items():
        choice = pick(rng, options)
        if "|" in key:
            for k, v in zip(key.split("|"), choice):
                vals[k] = v
        else:
            vals[key] = choice
    return vals


def gen_open_writing(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.36:
        purposes, body, slots = pick(rng, NOTE_SITUATIONS)
        vals = _fill_situation(rng, slots)
        vals.setdefault("day", pick(rng, DAYS))
        vals.setdefault("time", pick(rng, TIMES))
        to, sender = rng.sample(NAMES, 2)
        purpose = pick(rng, purposes).format(**vals)
        ins = pick(rng, NOTE_TEMPLATES).format(to=to, purpose=purpose)
        text = body.format(**vals)
        if rng.random() < 0.5:
            resp = f"Hi {to},\n\n{text}\n\n{pick(rng, SIGNOFFS)},\n{sender}"
        else:
            resp = f"Dear {to},\n\n{text}\n\n{pick(rng, SIGNOFFS)},\n{sender}"
        return ins, None, resp
    if r < 0.52:
        event, place, extra = pick(rng, INVITATIONS)
        day, time = pick(rng, DAYS), pick(rng, TIMES)
        rsvp = DAYS[(DAYS.index(day) - 2) % 7]
        ins = pick(rng, INVITE_TEMPLATES).format(event=event, day=day, time=time)
        resp = f"You are invited to {event} on {day} at {time} {place}! {extra} Please let me know by {rsvp} if you can come."
        return ins, None, resp
    if r < 0.74:
        p = pick(rng, sorted(PLACES))
        sentences = [pick(rng, slot) for slot in PLACES[p]]
        return pick(rng, PLACE_TEMPLATES).format(p=p), None, " ".join(sentences)
    if r < 0.84:
        x = pick(rng, sorted(SLOGANS))
        return pick(rng, SLOGAN_TEMPLATES).format(x=x), None, pick(rng, SLOGANS[x])
    if r < 0.93:
        cond, first, advice = pick(rng, FORECASTS)
        city = pick(rng, CITIES)
        lo, hi = FORECAST_TEMPS[cond]
        t = rng.randint(lo, hi)
        ins = pick(rng, FORECAST_TEMPLATES).format(city=city, cond=cond)
        return ins, None, f"Tomorrow in {city}: {first.format(t=t)} {advice}"
    name, job, city, hobby = pick(rng, NAMES), pick(rng, BIO_JOBS), pick(rng, CITIES), pick(rng, BIO_HOBBIES)
    ins = pick(rng, BIO_TEMPLATES).format(name=name, job=job, city=city, hobby=hobby)
    resp = f"{name} is {article(job)} {job} from {city} who loves {hobby} in their free time."
    return ins, None, resp


# ---------------------------------------------------------------------------------------------
# rewriting
# ---------------------------------------------------------------------------------------------

SPELL_TEMPLATES = ["Correct the spelling mistakes in this sentence.", "Fix the typos in the following sentence.",
                   "This sentence has some spelling errors. Write it out correctly.",
                   "Rewrite the sentence with correct spelling.", "Proofread this sentence and correct the spelling.",
                   "Fix the spelling."]
CAPS_TEMPLATES = ["Add the missing capital letters and the full stop to this sentence.",
                  "Rewrite this sentence with correct capitalisation and punctuation.",
                  "Capitalise this sentence properly and end it with a full stop.",
                  "Fix the capital letters and punctuation in the following sentence."]
UPPER_TEMPLATES = ["Rewrite this sentence in capital letters.", "Convert the following text to upper case.",
                   "Write this sentence in all caps."]
FORMAL_PAIRS = [
    ("hey {name}, can u send me the {doc} asap?", "Hello {name}, could you please send me the {doc} as soon as possible?"),
    ("sorry, gonna be late today!!", "I apologise, but I will be late today."),
    ("thx for the help with the {task}, u rock", "Thank you very much for your help with the {task}."),
    ("can't make the meeting on {day}, something came up", "Unfortunately, I will not be able to attend the meeting on {day} because something has come up."),
    ("need the {doc} by {day}, ok?", "I would be grateful if you could send me the {doc} by {day}."),
    ("wanna grab lunch on {day}?", "Would you like to have lunch together on {day}?"),
    ("the {thing} is broken again, pls fix it", "The {thing} is broken again. Could you please have it repaired?"),
    ("no clue what the {doc} is about, can u explain?", "I do not understand the {doc}. Could you please explain it to me?"),
    ("got ur email, will look at it later", "Thank you for your email. I will review it later today."),
    ("we're out of {supply}, someone buy more", "We have run out of {supply}. Could someone please buy more?"),
    ("yeah {day} works for me, see ya", "Yes, {day} is convenient for me. I look forward to seeing you."),
    ("dunno if i can finish the {doc} today", "I am not sure whether I will be able to finish the {doc} today."),
]
FORMAL_SLOTS = {"doc": ["report", "slides", "invoice", "budget", "contract", "schedule", "spreadsheet"],
                "task": ["move", "presentation", "spreadsheet", "training session"],
                "thing": ["printer", "coffee machine", "projector", "door lock", "air conditioner"],
                "supply": ["paper", "coffee", "printer ink", "milk", "envelopes"]}
FORMAL_TEMPLATES = ["Rewrite this message in a formal tone.", "Make the following sentence more formal.",
                    "Turn this into formal English.", "Rephrase this text so it sounds professional.",
                    "Rewrite the message below for a formal business email."]
# (base, third person singular, past, rest)
TENSE_VERBS = [
    ("walk", "walks", "walked", "to school"), ("play", "plays", "played", "the piano after lunch"),
    ("eat", "eats", "ate", "an apple every morning"), ("read", "reads", "read", "the newspaper at breakfast"),
    ("write", "writes", "wrote", "a letter to a friend"), ("drink", "drinks", "drank", "tea in the garden"),
    ("catch", "catches", "caught", "the bus at seven"), ("buy", "buys", "bought", "fresh bread at the market"),
    ("swim", "swims", "swam", "in the lake"), ("sing", "sings", "sang", "in the choir"),
    ("teach", "teaches", "taught", "maths at the local school"), ("feed", "feeds", "fed", "the chickens"),
    ("build", "builds", "built", "a sandcastle on the beach"), ("wash", "washes", "washed", "the car on Sundays"),
    ("clean", "cleans", "cleaned", "the kitchen after dinner"), ("take", "takes", "took", "the dog for a walk"),
    ("win", "wins", "won", "the race"), ("make", "makes", "made", "pancakes for breakfast"),
    ("visit", "visits", "visited", "the museum"), ("ride", "rides", "rode", "a bike to work"),
    ("watch", "watches", "watched", "a film in the evening"), ("grow", "grows", "grew", "tomatoes in the garden"),
    ("find", "finds", "found", "a coin on the pavement"), ("paint", "paints", "painted", "the fence"),
]
SUBJ_SING = ["Tom", "My sister", "The old man", "Our teacher", "Lucy", "My neighbour", "The little boy", "She", "He"]
SUBJ_PLUR = ["We", "They", "My parents", "The children", "Our friends", "I"]
PAST_TEMPLATES = ["Rewrite this sentence in the past tense.", "Change the following sentence to the past tense.",
                  "Put this sentence into the past tense.", "Write the sentence again, but in the past tense."]
PRESENT_TEMPLATES = ["Rewrite this sentence in the present tense.", "Change the following sentence to the present tense.",
                     "Put this sentence into the simple present tense."]

COMMON_FUNCTION_WORDS = {"the", "and", "was", "were", "that", "this", "with", "from", "they", "their", "there",
                         "have", "been", "what", "when", "into", "your", "will", "would", "could", "should"}


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # swap two neighbouring letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1:]
    if kind == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    vowels = "aeiou"
    idx = [j for j in range(1, len(word)) if word[j] in vowels]
    if not idx:
        return word[:i] + word[i] + word[i:]
    j = pick(rng, idx)
    return word[:j] + pick(rng, [v for v in vowels if v != word[j]]) + word[j + 1:]


def _sentence(ex: str) -> str:
    ex = ex.strip()
    ex = cap(ex)
    return ex if ex[-1] in ".!?" else ex + "."


def gen_rewriting(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.3:
        sent = _sentence(pick(rng, ctx["examples"]))
        tokens = sent.split(" ")
        cand = [i for i, t in enumerate(tokens) if t.isalpha() and len(t) >= 4 and t.lower() not in COMMON_FUNCTION_WORDS]
        cand = cand or [i for i, t in enumerate(tokens) if t.rstrip(".,").isalpha() and len(t) >= 4]
        if not cand:
            return None
        k = min(len(cand), rng.choice([1, 2, 2, 3]))
        for i in sorted(rng.sample(cand, k)):
            for _ in range(5):
                t = _typo(tokens[i], rng)
                if t != tokens[i] and not ctx["is_word"](t):
                    tokens[i] = t
                    break
        bad = " ".join(tokens)
        if bad == sent:
            return None
        return pick(rng, SPELL_TEMPLATES), bad, sent
    if r < 0.48:
        sent = _sentence(pick(rng, ctx["examples"]))
        return pick(rng, CAPS_TEMPLATES), sent[:-1].lower(), sent
    if r < 0.55:
        sent = _sentence(pick(rng, ctx["examples"]))
        return pick(rng, UPPER_TEMPLATES), sent, sent.upper()
    if r < 0.75:
        inf, form = pick(rng, FORMAL_PAIRS)
        vals = {k: pick(rng, v) for k, v in FORMAL_SLOTS.items()}
        vals["name"], vals["day"] = pick(rng, NAMES), pick(rng, DAYS)
        return pick(rng, FORMAL_TEMPLATES), inf.format(**vals), form.format(**vals)
    base, third, past, rest = pick(rng, TENSE_VERBS)
    if rng.random() < 0.6:
        subj, present = pick(rng, SUBJ_SING), third
    else:
        subj, present = pick(rng, SUBJ_PLUR), base
    pres_s, past_s = f"{subj} {present} {rest}.", f"{subj} {past} {rest}."
    if r < 0.92:
        return pick(rng, PAST_TEMPLATES), pres_s, past_s
    return pick(rng, PRESENT_TEMPLATES), past_s, pres_s


# ---------------------------------------------------------------------------------------------
# summarising
# ---------------------------------------------------------------------------------------------

SUMMARY_TEMPLATES = ["Summarise this in one sentence.", "Give a one-sentence summary of the following text.",
                     "Write a one-sentence summary.", "Sum up the text below in a single sentence.",
                     "Summarise the main point of the text in one sentence.", "Briefly summarise the following.",
                     "Provide a short summary of this passage.", "Summarize the following paragraph in one sentence.",
                     "Give me the gist of this text in one sentence.", "Write a single sentence that summarises this text.",
                     "Summarise the passage below in no more than 25 words."]
MEETINGS = ["team meeting", "project review", "budget meeting", "training session", "planning meeting"]
MEETING_REASONS = ["several people are on a course that morning", "the director has another appointment",
                   "the client asked for a later time", "the report is not ready yet", "the room is needed for interviews"]
PRODUCTS = {  # product: [(pro sentence, pro summary)], [(con sentence, con summary)]
    "kettle": ([("It boils water in about a minute", "boils water quickly"), ("It looks stylish on the counter", "looks stylish")],
               [("It is quite loud when it boils", "is loud"), ("The handle gets hot", "has a handle that gets hot")]),
    "backpack": ([("It has lots of pockets and feels comfortable on my back", "is comfortable and has many pockets"),
                  ("It kept my laptop dry in a heavy storm", "is waterproof")],
                 [("One of the zips broke after a month", "has a weak zip"), ("It is heavier than it looks", "is heavy")]),
    "pair of headphones": ([("The sound is clear and the bass is strong", "sound great"), ("The battery lasts for two days", "have a long battery life")],
                           [("They hurt my ears after an hour", "are uncomfortable after a while"), ("The case feels cheap", "come with a cheap case")]),
    "desk lamp": ([("It gives a bright, even light", "gives bright light"), ("It is easy to adjust", "is easy to adjust")],
                  [("The cable is very short", "has a short cable"), ("The base wobbles a little", "has a wobbly base")]),
    "vacuum cleaner": ([("It picks up dust and pet hair easily", "cleans well"), ("It is light and easy to carry upstairs", "is light")],
                       [("The bin fills up very quickly", "has a small bin"), ("It is very noisy", "is noisy")]),
    "phone case": ([("It protected my phone when I dropped it on the stairs", "protects the phone well"), ("It has a nice grip", "has a good grip")],
                   [("The colour faded after a few weeks", "fades quickly"), ("It makes the phone bulky", "is bulky")]),
    "tent": ([("It is quick to put up, even alone", "is quick to put up"), ("It stayed dry during a night of rain", "keeps the rain out")],
             [("It is too small for three people", "is cramped"), ("The bag it comes in is hard to close", "comes with a bag that is hard to close")]),
}
VERDICTS = [("Overall, I would recommend it.", "would recommend it"), ("For the price, I am happy with it.", "is happy with it for the price"),
            ("I would not buy it again.", "would not buy it again"), ("I am going to return it.", "plans to return it"),
            ("It does the job, so I will keep it.", "will keep it")]
TEAMS = ["Riverside Rovers", "Hilltop United", "Northgate City", "Lakeside Athletic", "Westbrook Town", "Eastfield Rangers",
         "Harbour FC", "Old Mill Wanderers"]
WEATHER_EVENTS = [
    ("heavy rain", "Up to 40 millimetres could fall in a few hours, and some roads may flood", "avoid driving unless their trip is necessary"),
    ("strong winds", "Gusts of up to 90 kilometres per hour are expected near the coast", "tie down garden furniture and stay away from the beach"),
    ("a heatwave", "Temperatures could reach 38 degrees in the afternoon", "drink plenty of water and stay out of the midday sun"),
    ("thick fog", "Visibility may drop below 50 metres in the early morning", "drive slowly and leave extra time for their journeys"),
    ("heavy snow", "Up to 20 centimetres of snow could settle on higher ground", "check bus and train times before leaving home"),
]
REGIONS = ["the north coast", "the western hills", "the capital region", "the southern valleys", "the east of the country", "the islands"]
STUDY_ANIMALS = [
    ("crows", "could remember individual human faces for several years", "recognising people helps them avoid danger", "test whether young crows learn this from their parents"),
    ("goats", "preferred to approach photos of smiling people", "goats have lived close to humans for thousands of years", "study sheep in the same way"),
    ("sea turtles", "used the Earth's magnetic field to find the beach where they hatched", "the field is slightly different along each stretch of coast", "track turtles with small satellite tags"),
    ("pigeons", "could learn to tell paintings by different artists apart", "they are very good at spotting patterns", "test whether they can remember the paintings a year later"),
    ("octopuses", "slept in two stages, much like humans do", "the active stage helps them store memories", "measure their brain activity during sleep"),
    ("horses", "changed their facial expressions when they met a new horse", "faces help them show whether they are friendly", "film wild horses in the mountains"),
    ("zebrafish", "could regrow damaged parts of their hearts", "certain cells can turn back into young heart cells", "look for the same cells in mice"),
]
UNIS = ["a university in Norway", "a research centre in Japan", "a university in Canada", "a lab in Brazil", "a university in Scotland"]
SHOPS = [("Parker's", "hardware store"), ("Petal & Stem", "florist"), ("The Paper Lantern", "bookshop"), ("Toy Box", "toy shop"),
         ("Green Cross", "pharmacy"), ("Corner Cup", "café"), ("Fresh Fields", "greengrocer")]
SHOP_CHANGES = [
    ("close for two weeks", "so that the shop can be repaired after a leak damaged the floor", "close for two weeks for repairs"),
    ("start opening on Sundays", "because so many customers asked for it", "start opening on Sundays because customers asked for it"),
    ("move to a bigger building on Station Road", "because the old shop has become too small", "move to a bigger building because the old shop is too small"),
    ("begin delivering to homes", "to help older customers who find it hard to visit", "begin home deliveries to help older customers"),
    ("stop using plastic bags", "to cut down on waste", "stop using plastic bags to reduce waste"),
]
SCHOOL_EVENTS = [("spring fair", "games, a cake stall and a raffle"), ("charity concert", "songs by the choir, a jazz band and a piano duet"),
                 ("fun run", "a 5-kilometre race, face painting and a barbecue"), ("talent show", "singing, magic tricks and comedy acts"),
                 ("sports day", "races, a tug of war and a football match between parents and teachers")]
SCHOOLS = ["Oakwood Primary School", "St Mary's School", "Hillside Academy", "Brookfield School", "Maple Grove School"]
CAUSES = ["a new school garden", "the local animal shelter", "new books for the school", "a children's hospital", "a trip to the coast for every class"]


def gen_summarising(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    kind = rng.randrange(7)
    ins = pick(rng, SUMMARY_TEMPLATES)
    if kind == 0:
        day, meeting, reason = pick(rng, DAYS), pick(rng, MEETINGS), pick(rng, MEETING_REASONS)
        t1, t2 = sorted(rng.sample(TIMES[:6], 2), key=TIMES.index)
        room, name = pick(rng, ["Room 2", "the main hall", "the second-floor meeting room"]), pick(rng, NAMES)
        text = (f"Hi everyone, {day}'s {meeting} has been moved from {t1} to {t2} because {reason}. It will still be held in "
                f"{room}. Please update your calendars and let me know if the new time does not work for you. Thanks, {name}")
        if rng.random() < 0.3:
            ins = pick(rng, ["What is the main point of this email? Answer in one sentence.", "Summarise this email in one sentence."])
        return ins, text, f"{day}'s {meeting} has moved from {t1} to {t2} because {reason}."
    if kind == 1:
        prod = pick(rng, sorted(PRODUCTS))
        pros, cons = PRODUCTS[prod]
        (ps, pshort), (cs, cshort), (vs, vshort) = pick(rng, pros), pick(rng, cons), pick(rng, VERDICTS)
        when = pick(rng, ["last month", "two weeks ago", "in the spring", "for my birthday", "a few days ago"])
        text = f"I bought this {prod} {when}. {ps}, which I really like. However, {cs[0].lower() + cs[1:]}. {vs}"
        the = "The pair of headphones" if prod == "pair of headphones" else f"The {prod}"
        return ins, text, f"{the} {pshort} but {cshort}, and the reviewer {vshort}."
    if kind == 2:
        a, b = rng.sample(TEAMS, 2)
        s1 = rng.randint(2, 5)
        s2 = rng.randint(0, s1 - 1)
        player = f"{pick(rng, NAMES)} {pick(rng, SURNAMES)}"
        k = rng.randint(2, s1)
        pos = pick(rng, ["first", "second", "third", "fourth"])
        day = pick(rng, DAYS)
        text = (f"{a} beat {b} {s1}-{s2} on {day} in front of a home crowd of {rng.randint(3, 30)},000. {player} scored "
                f"{NUM_WORDS[k]} of the goals, including one in the final minute. {possessive(b)} coach said his team had been tired "
                f"after a long week. The result moves {a} up to {pos} place in the league.")
        return ins, text, f"{a} beat {b} {s1}-{s2}, with {NUM_WORDS[k]} goals from {player}, and moved up to {pos} place in the league."
    if kind == 3:
        cond, detail, advice = pick(rng, WEATHER_EVENTS)
        region, day = pick(rng, REGIONS), pick(rng, DAYS)
        day2 = DAYS[(DAYS.index(day) + 2) % 7]
        text = (f"Forecasters say {region} will see {cond} on {day}. {detail}. People are advised to {advice}. "
                f"Conditions should improve by {day2}.")
        return ins, text, f"{cap(region)} can expect {cond} on {day}, but conditions should improve by {day2}."
    if kind == 4:
        animals, finding, cause, nxt = pick(rng, STUDY_ANIMALS)
        uni, n, years = pick(rng, UNIS), rng.choice([12, 20, 35, 48, 60, 120]), pick(rng, ["two years", "three years", "eighteen months", "five years"])
        text = (f"Researchers at {uni} studied {n} {animals} for {years}. They found that the {animals} {finding}. "
                f"The team thinks this may be because {cause}. They now plan to {nxt}.")
        return ins, text, f"A study found that {animals} {finding}."
    if kind == 5:
        (shop, kind_), (change, reason, short) = pick(rng, SHOPS), pick(rng, SHOP_CHANGES)
        month, owner = pick(rng, MONTHS), f"{pick(rng, NAMES)} {pick(rng, SURNAMES)}"
        text = (f"{shop}, the {kind_} on Market Street, will {change} from the start of {month}. The owner, {owner}, said "
                f"the decision was made {reason}. Opening hours on other days will not change. Customers can find "
                f"updates on the shop's website.")
        return ins, text, f"From the start of {month}, {shop} will {short}."
    school, (event, acts), cause = pick(rng, SCHOOLS), pick(rng, SCHOOL_EVENTS), pick(rng, CAUSES)
    day, month, price = pick(rng, ["Saturday", "Friday", "Sunday"]), pick(rng, MONTHS), rng.choice([2, 3, 5])
    text = (f"{school} will hold its {event} on the last {day} of {month}. The event starts at {pick(rng, TIMES[:4])} and "
            f"will include {acts}. Tickets cost {price} pounds, and all the money raised will go to {cause}. "
            f"Parents, grandparents and neighbours are all welcome.")
    return ins, text, f"{school} is holding a {event} in {month} to raise money for {cause}."


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

REVIEW_ITEMS = ["The food", "The service", "This phone", "The hotel room", "The delivery", "This book", "The concert",
                "The new update", "This jacket", "The tour guide", "The film", "This blender"]
POS_PRED = ["was excellent", "exceeded my expectations", "was worth every penny", "made my day", "was a pleasant surprise",
            "was fantastic from start to finish", "was perfect", "was better than I hoped"]
NEG_PRED = ["was a complete waste of money", "was terrible", "stopped working after two days", "was really disappointing",
            "left me frustrated", "was far worse than advertised", "arrived broken", "was a total letdown"]
POS_TAIL = ["I will definitely come back.", "Highly recommended!", "I would buy it again.", "Five stars from me.", "Absolutely loved it.", ""]
NEG_TAIL = ["I want a refund.", "Never again.", "I would not recommend it to anyone.", "One star.", "Avoid it.", ""]
SENT_LABELS = [("Positive", "Negative"), ("Positive", "Negative"), ("Satisfied", "Unsatisfied"), ("Good", "Bad")]
SENT_TEMPLATES = ["Is this review {a} or {b}?", "Classify the sentiment of this review as {a} or {b}.",
                  "What is the sentiment of the following text? Answer {a} or {b}.",
                  "Label the following comment as {a} or {b}.", "Decide if this customer comment is {a} or {b}."]
HEADLINES = {
    "Sports": ["{team} win the cup after a dramatic penalty shoot-out", "Star striker signs a new three-year contract",
               "Tennis champion knocked out in the first round", "Marathon record broken in {city}",
               "{team} sack their manager after five defeats in a row"],
    "Technology": ["New smartphone folds into the size of a wallet", "Software update fixes battery problem on millions of laptops",
                   "Start-up in {city} builds a robot that sorts recycling", "Electric car batteries now charge in ten minutes",
                   "Popular messaging app adds video calls for large groups"],
    "Health": ["Doctors say a short daily walk lowers the risk of heart disease", "Flu vaccine now available at local pharmacies",
               "Study links poor sleep to higher stress levels", "Hospital in {city} opens a new children's ward",
               "Experts recommend less sugar in school lunches"],
    "Politics": ["Parliament passes new law on public transport", "Prime minister meets foreign leaders in {city}",
                 "Voters head to the polls in regional elections", "Government announces tax cut for small businesses",
                 "Opposition party chooses a new leader"],
    "Business": ["Supermarket chain reports record profits", "Car maker to open a new factory near {city}",
                 "Shares fall after the bank raises interest rates", "Coffee prices rise for the third month in a row",
                 "Local firm hires 200 new workers"],
    "Weather": ["Heavy snow closes roads across the north", "Heatwave expected to last until the weekend",
                "Storm brings flooding to coastal towns near {city}", "Driest spring in fifty years worries farmers",
                "Thick fog delays flights at {city} airport"],
}
TOPIC_TEMPLATES = ["What is the topic of this headline? Choose from: {opts}.", "Classify this headline into one of these categories: {opts}.",
                   "Which category does this news headline belong to ({opts})?", "Assign a topic to this headline. Options: {opts}."]
ODD_GROUPS = {
    "fruit": ["apple", "banana", "cherry", "mango", "pear", "grape", "peach", "plum", "lemon", "kiwi"],
    "vegetable": ["carrot", "potato", "onion", "cabbage", "broccoli", "pea", "leek", "spinach"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"],
    "vehicle": ["car", "bus", "train", "bicycle", "lorry", "tram", "scooter", "van"],
    "furniture": ["chair", "table", "sofa", "wardrobe", "bed", "shelf", "desk", "stool"],
    "clothing": ["shirt", "jacket", "sock", "scarf", "coat", "skirt", "glove", "sweater"],
    "planet": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"],
    "body part": ["elbow", "knee", "finger", "shoulder", "ankle", "nose", "wrist"],
    "drink": ["tea", "coffee", "milk", "lemonade", "cocoa"],
}
ODD_TEMPLATES = ["Which word is the odd one out: {w}?", "Find the word that does not fit with the others: {w}.",
                 "One of these words does not belong: {w}. Which one is it?", "Pick the odd one out from this list: {w}."]
ANIMAL_CLASSES = {"Mammal": ["dog", "horse", "elephant", "lion", "rabbit", "cow", "mouse", "giraffe", "tiger", "kangaroo", "bear", "sheep"],
                  "Bird": ["eagle", "sparrow", "owl", "parrot", "pigeon", "swan", "robin", "flamingo", "duck", "crow"],
                  "Fish": ["salmon", "tuna", "trout", "cod", "shark", "carp", "herring", "sardine"],
                  "Reptile": ["crocodile", "snake", "lizard", "tortoise", "iguana", "chameleon", "alligator", "cobra"]}
ANIMAL_TEMPLATES = ["What kind of animal is a {x}: mammal, bird, fish, or reptile?",
                    "Classify the animal as a mammal, bird, fish, or reptile: {x}.",
                    "Mammal, bird, fish, or reptile? {X}", "Which group does the {x} belong to: mammals, birds, fish, or reptiles?"]
QUESTIONS = ["Where did you put the {thing}", "Have you seen my {thing}", "Can you help me carry the {thing}",
             "What time does the {place} open", "Why is the {place} closed today", "How far is it to the {place}",
             "Did {name} call you yesterday", "Is the {thing} in the kitchen", "When will {name} arrive",
             "Who left the {thing} on the stairs"]
Q_THINGS = ["umbrella", "red box", "keys", "ladder", "blue folder", "camera", "suitcase"]
Q_PLACES = ["museum", "post office", "swimming pool", "station", "bank", "zoo"]
QS_TEMPLATES = ["Is this sentence a question or a statement?", "Classify the following sentence as a question or a statement.",
                "Question or statement?"]
EVENODD_TEMPLATES = ["Is {n} an even or an odd number?", "Classify the number {n} as even or odd.", "Even or odd: {n}?"]


def gen_classification(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.32:
        pos = rng.random() < 0.5
        item = pick(rng, REVIEW_ITEMS)
        pred = pick(rng, POS_PRED if pos else NEG_PRED)
        tail = pick(rng, POS_TAIL if pos else NEG_TAIL)
        text = f"{item} {pred}. {tail}".strip()
        a, b = pick(rng, SENT_LABELS)
        return pick(rng, SENT_TEMPLATES).format(a=a.lower(), b=b.lower()), text, a if pos else b
    if r < 0.56:
        topic = pick(rng, sorted(HEADLINES))
        head = pick(rng, HEADLINES[topic]).format(team=pick(rng, TEAMS), city=pick(rng, CITIES))
        others = rng.sample([t for t in sorted(HEADLINES) if t != topic], rng.randint(2, 3))
        opts = others + [topic]
        rng.shuffle(opts)
        return pick(rng, TOPIC_TEMPLATES).format(opts=", ".join(opts)), head, topic
    if r < 0.76:
        g1, g2 = rng.sample(sorted(ODD_GROUPS), 2)
        words = rng.sample(ODD_GROUPS[g1], 3)
        odd = pick(rng, ODD_GROUPS[g2])
        allw = words + [odd]
        rng.shuffle(allw)
        return pick(rng, ODD_TEMPLATES).format(w=", ".join(allw)), None, cap(odd)
    if r < 0.87:
        cls = pick(rng, sorted(ANIMAL_CLASSES))
        x = pick(rng, ANIMAL_CLASSES[cls])
        return pick(rng, ANIMAL_TEMPLATES).format(x=x, X=cap(x)), None, cls
    if r < 0.95:
        if rng.random() < 0.5:
            q = pick(rng, QUESTIONS).format(thing=pick(rng, Q_THINGS), place=pick(rng, Q_PLACES), name=pick(rng, NAMES)) + "?"
            return pick(rng, QS_TEMPLATES), q, "Question"
        return pick(rng, QS_TEMPLATES), _sentence(pick(rng, ctx["examples"])), "Statement"
    n = rng.randint(3, 199)
    return pick(rng, EVENODD_TEMPLATES).format(n=n), None, "Even" if n % 2 == 0 else "Odd"


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------

NAME_SENTENCES = ["{a} and {b} met at the {place} to plan the trip.", "Yesterday {a} lent {b} a book about birds.",
                  "The prize went to {a}, while {b} and {c} shared second place.", "{a} called {b} to ask about the homework.",
                  "At the weekend, {a} helped {b} and {c} paint the fence.", "{a} is the new captain of the team, and {b} is her deputy.",
                  "The letter was signed by {a}."]
NAME_TEMPLATES = ["Extract the names of the people in this text.", "Which people are mentioned below?",
                  "List the person names that appear in the sentence.", "Who is mentioned in this sentence? Give only the names."]
NUM_SENTENCES = [  # (sentence, (low, high) range of each number)
    ("The farm has {0} cows, {1} sheep and {2} goats.", [(2, 90), (100, 400), (2, 12)]),
    ("Our class read {0} books in March and {1} in April.", [(5, 40), (5, 40)]),
    ("The bus leaves from stop {0} and takes {1} minutes to reach the centre.", [(2, 60), (5, 45)]),
    ("The recipe needs {0} eggs, {1} grams of flour and {2} spoons of sugar.", [(2, 6), (100, 300), (2, 4)]),
    ("There were {0} people at the match, and {1} of them stayed until the end.", [(300, 900), (100, 299)]),
    ("The hotel has {0} rooms on {1} floors.", [(20, 150), (2, 9)]),
    ("The runner finished the {0}-kilometre race in {1} minutes.", [(5, 21), (25, 130)]),
]
NUM_TEMPLATES = ["Extract all the numbers from this text.", "Pull out every number in the sentence.",
                 "Which numbers appear in the text below?", "List the numbers mentioned in this sentence."]
DATE_SENTENCES = ["The {e1} is on {d1}, and the {e2} is on {d2}.", "We moved house on {d1} and started the new job on {d2}.",
                  "Tickets go on sale on {d1}; the {e1} itself takes place on {d2}.", "The shop will be closed from {d1} until {d2}.",
                  "Please send your form before {d1}."]
EVENTS = ["school play", "swimming gala", "dentist appointment", "book club meeting", "piano exam", "team dinner", "science fair"]
DATE_TEMPLATES = ["Extract the dates from this text.", "Which dates are mentioned in the sentence?",
                  "Find all the dates in the following sentence.", "Pull out the dates mentioned below."]
CITY_SENTENCES = ["{p} flew from {c1} to {c2} and then took a train to {c3}.", "The band will play in {c1} and {c2} next month.",
                  "Our company has offices in {c1}, {c2} and {c3}.", "{p} grew up in {c1} but now lives in {c2}.",
                  "The cheapest flights to {c1} leave from {c2}."]
CITY_TEMPLATES = ["Which cities are mentioned in this text?", "Extract the city names from the sentence.",
                  "List every city that appears below.", "Find the names of the cities in this sentence."]
EMAIL_DOMAINS = ["example.com", "mail.org", "school.edu", "company.net", "post.co.uk"]
EMAIL_SENTENCES = ["For more information, contact {n} at {e}.", "Please send your photos to {e} by Friday.",
                   "If you have any questions, write to {e}.", "Our new address for orders is {e}."]
EMAIL_TEMPLATES = ["Extract the email address from this text.", "What email address is given in the sentence?",
                   "Pull out the email address."]
SHOP_ITEMS = ["notebooks", "mugs", "candles", "umbrellas", "T-shirts", "plant pots", "scarves", "torches"]
PRICE_TEMPLATES = ["According to the text, how much does one of the {i2} cost?", "What is the price of the {i2}, according to the text?"]


def _date(rng):
    return f"{rng.randint(1, 28)} {pick(rng, MONTHS)}"


def gen_extraction(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.22:
        s = pick(rng, NAME_SENTENCES)
        full = rng.random() < 0.35
        names = [f"{n} {pick(rng, SURNAMES)}" if full else n for n in rng.sample(NAMES, 3)]
        used = [n for k, n in zip("abc", names) if "{" + k + "}" in s]
        text = s.format(a=names[0], b=names[1], c=names[2], place=pick(rng, ["library", "café", "station", "park"]))
        return pick(rng, NAME_TEMPLATES), text, ", ".join(used)
    if r < 0.4:
        s, ranges = pick(rng, NUM_SENTENCES)
        nums = [rng.randint(lo, hi) for lo, hi in ranges]
        text = s.format(*nums)
        used = nums
        return pick(rng, NUM_TEMPLATES), text, ", ".join(str(n) for n in used)
    if r < 0.55:
        s = pick(rng, DATE_SENTENCES)
        d1, d2 = _date(rng), _date(rng)
        e1, e2 = rng.sample(EVENTS, 2)
        used = [d for k, d in zip(["{d1}", "{d2}"], [d1, d2]) if k in s]
        return pick(rng, DATE_TEMPLATES), s.format(d1=d1, d2=d2, e1=e1, e2=e2), ", ".join(used)
    if r < 0.73:
        s = pick(rng, CITY_SENTENCES)
        cs = rng.sample(CITIES, 3)
        used = [c for k, c in zip(["{c1}", "{c2}", "{c3}"], cs) if k in s]
        return pick(rng, CITY_TEMPLATES), s.format(p=pick(rng, NAMES), c1=cs[0], c2=cs[1], c3=cs[2]), ", ".join(used)
    if r < 0.85:
        n = pick(rng, NAMES)
        e = f"{n.lower()}.{pick(rng, SURNAMES).lower()}@{pick(rng, EMAIL_DOMAINS)}" if rng.random() < 0.6 else \
            f"{pick(rng, ['info', 'orders', 'team', 'office', 'tickets'])}@{pick(rng, EMAIL_DOMAINS)}"
        return pick(rng, EMAIL_TEMPLATES), pick(rng, EMAIL_SENTENCES).format(n=n, e=e), e
    i1, i2 = rng.sample(SHOP_ITEMS, 2)
    p1, p2 = rng.randint(2, 30), rng.randint(2, 30)
    text = f"The gift shop sells {i1} for {p1} dollars each and {i2} for {p2} dollars each. It is open every day except Monday."
    return pick(rng, PRICE_TEMPLATES).format(i2=i2), text, f"{p2} dollars."


# ---------------------------------------------------------------------------------------------
# brainstorming
# ---------------------------------------------------------------------------------------------

BRAIN = {
    "kinds of fruit": ["Apple", "Banana", "Mango", "Pineapple", "Strawberry", "Pear", "Cherry", "Watermelon", "Grape", "Kiwi"],
    "vegetables that grow underground": ["Carrot", "Potato", "Beetroot", "Radish", "Onion", "Turnip", "Parsnip", "Garlic"],
    "wild animals that live in Africa": ["Lion", "Elephant", "Giraffe", "Zebra", "Hippo", "Cheetah", "Gorilla", "Rhino", "Leopard"],
    "ways to save energy at home": ["Turn off lights when you leave a room", "Unplug chargers that are not in use",
                                    "Use LED light bulbs", "Dry clothes outside instead of in a dryer",
                                    "Lower the heating by one degree", "Take shorter showers", "Only run the dishwasher when it is full",
                                    "Close curtains at night to keep heat in"],
    "tips for studying for an exam": ["Start revising early", "Make a study timetable", "Take short breaks every hour",
                                      "Test yourself with past papers", "Get enough sleep", "Study in a quiet place",
                                      "Explain the topic to a friend", "Put your phone in another room"],
    "things to take to the beach": ["Sun cream", "Towel", "Swimsuit", "Sunglasses", "Water bottle", "Hat", "Beach umbrella",
                                    "A good book", "Snacks"],
    "indoor hobbies": ["Reading", "Knitting", "Painting", "Playing chess", "Baking", "Doing jigsaw puzzles", "Learning a language",
                       "Playing the piano", "Writing a diary"],
    "outdoor activities for a sunny day": ["Go for a bike ride", "Have a picnic", "Play frisbee in the park", "Go swimming",
                                           "Visit the zoo", "Walk along the river", "Play tennis", "Fly a kite"],
    "kitchen tools": ["Knife", "Chopping board", "Whisk", "Wooden spoon", "Frying pan", "Grater", "Sieve", "Rolling pin", "Ladle"],
    "musical instruments": ["Piano", "Guitar", "Drums", "Saxophone", "Cello", "Harp", "Clarinet", "Accordion", "Banjo"],
    "jobs in a hospital": ["Doctor", "Nurse", "Surgeon", "Pharmacist", "Cleaner", "Porter", "Radiographer", "Receptionist", "Midwife"],
    "team sports": ["Football", "Basketball", "Volleyball", "Rugby", "Hockey", "Cricket", "Baseball", "Water polo", "Handball"],
    "ways to stay healthy": ["Eat plenty of fruit and vegetables", "Exercise for thirty minutes a day", "Drink enough water",
                             "Sleep seven to eight hours a night", "Wash your hands often", "Spend time outdoors",
                             "Limit sugary drinks", "See friends regularly"],
    "gift ideas for a friend who loves cooking": ["A new cookbook", "A set of spices", "A cast-iron pan", "A cooking class",
                                                  "A nice apron", "A herb garden kit", "A good chef's knife", "Homemade jam"],
    "names for a pet dog": ["Max", "Bella", "Charlie", "Luna", "Buddy", "Daisy", "Rocky", "Milo", "Poppy", "Biscuit"],
    "things to do on a rainy day": ["Watch a film", "Bake a cake", "Play a board game", "Read a book", "Build a blanket fort",
                                    "Do a jigsaw puzzle", "Visit a museum", "Write a letter to a friend"],
    "items in a school bag": ["Pencil case", "Exercise books", "Water bottle", "Lunch box", "Calculator", "Ruler", "Reading book",
                              "Homework diary"],
    "breakfast foods": ["Porridge", "Scrambled eggs", "Toast with jam", "Pancakes", "Yogurt with fruit", "Cereal with milk",
                        "Croissant", "Boiled eggs"],
    "countries in Europe": ["France", "Spain", "Germany", "Italy", "Poland", "Sweden", "Greece", "Portugal", "Ireland", "Norway"],
    "colours of the rainbow": ["Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet"],
    "ways to reduce food waste": ["Plan meals before shopping", "Make a shopping list", "Freeze leftovers", "Use older food first",
                                  "Store fruit and vegetables properly", "Cook smaller portions", "Turn leftovers into soup",
                                  "Compost peelings"],
    "questions to ask a new classmate": ["Where are you from?", "What is your favourite subject?", "Do you have any pets?",
                                         "What do you like to do at the weekend?", "What music do you like?",
                                         "Do you play any sports?", "What is your favourite food?"],
    "things you can recycle": ["Glass bottles", "Newspapers", "Cardboard boxes", "Aluminium cans", "Plastic bottles",
                               "Old clothes", "Batteries", "Magazines"],
    "animals that live in the ocean": ["Shark", "Octopus", "Jellyfish", "Seal", "Starfish", "Crab", "Sea turtle", "Squid", "Seahorse"],
    "ways to be kind to a neighbour": ["Say hello when you see them", "Offer to carry heavy shopping", "Share vegetables from your garden",
                                       "Keep the noise down at night", "Bring them a card on their birthday", "Help clear snow from their path",
                                       "Invite them for a cup of tea"],
    "reasons to learn a second language": ["It helps when you travel", "It improves your memory", "It opens up more jobs",
                                           "You can make friends from other countries", "You can enjoy films and books in the original",
                                           "It helps you understand other cultures", "It keeps your brain active"],
    "things to pack for a business trip": ["Laptop and charger", "Passport", "Smart clothes", "Phone charger", "Notebook and pen",
                                           "Toiletries", "Business cards", "Travel adapter"],
    "planets in our solar system": ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"],
    "ways to relax after a long day": ["Take a warm bath", "Go for a short walk", "Listen to calm music", "Read a few chapters of a book",
                                       "Call a friend", "Do some gentle stretching", "Cook a simple meal", "Go to bed early"],
    "birthday party themes for children": ["Pirates", "Dinosaurs", "Space", "Superheroes", "Under the sea", "Jungle safari",
                                           "Fairy tales", "Circus"],
    "ingredients for a fruit salad": ["Strawberries", "Grapes", "Apple", "Banana", "Orange", "Blueberries", "Melon", "Kiwi"],
    "tools you need to build a birdhouse": ["Saw", "Hammer", "Nails", "Wood glue", "Sandpaper", "Measuring tape", "Pencil", "Drill"],
}
BRAIN_TEMPLATES = ["List {n} {c}.", "Name {n} {c}.", "Give me {n} {c}.", "What are {n} {c}?", "Write a list of {n} {c}.",
                   "Can you think of {n} {c}?", "Suggest {n} {c}.", "Brainstorm {n} {c}.", "Make a list of {n} {c}."]
BULLET_SUFFIX = [" Use bullet points.", " Put them in a bulleted list.", " Answer with bullet points."]


def gen_brainstorming(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    c = pick(rng, sorted(BRAIN))
    items = BRAIN[c]
    n = rng.randint(3, min(6, len(items)))
    chosen = rng.sample(items, n)
    ins = pick(rng, BRAIN_TEMPLATES).format(n=NUM_WORDS[n] if rng.random() < 0.8 else n, c=c)
    ins = cap(ins)
    if rng.random() < 0.2:
        ins += pick(rng, BULLET_SUFFIX)
        return ins, None, "\n".join(f"- {x}" for x in chosen)
    return ins, None, "\n".join(f"{i}. {x}" for i, x in enumerate(chosen, 1))


# ---------------------------------------------------------------------------------------------
# math
# ---------------------------------------------------------------------------------------------

COUNT_ITEMS = ["apples", "stickers", "marbles", "stamps", "cards", "shells", "balloons", "cookies",
               "eggs", "bananas", "coins", "beads"]
CONTAINERS = [("boxes", "box"), ("bags", "bag"), ("baskets", "basket"), ("jars", "jar"), ("trays", "tray"), ("packets", "packet")]
ADD_T = ["{name} has {a} {items} and gets {b} more. How many {items} does {name} have now?",
         "There are {a} {items} on the table. {name} puts {b} more on it. How many {items} are on the table now?",
         "{name} collected {a} {items} on Monday and {b} on Tuesday. How many {items} did {name} collect altogether?"]
SUB_T = ["{name} had {a} {items} and gave {b} to a friend. How many {items} does {name} have left?",
         "There are {a} {items} in a box. {name} takes out {b}. How many {items} are still in the box?",
         "{name} bought {a} {items} and lost {b} on the way home. How many are left?"]
MUL_T = ["There are {a} {cont} with {b} {items} in each. How many {items} are there in total?",
         "{name} buys {a} {cont} of {items}. Each one holds {b}. How many {items} does {name} buy?",
         "Each of {a} children has {b} {items}. How many {items} do they have altogether?"]
DIV_T = ["{name} packs {n} {items} into {m} {cont}, with the same number in each. How many {items} go in each {c1}?",
         "{n} {items} are put into {m} equal groups. How many {items} are in each group?",
         "{name} has {n} {items} and puts them into {m} {cont} equally. How many {items} are in each {c1}?"]
BARE = {"+": ["What is {a} + {b}?", "Calculate {a} + {b}.", "What is the sum of {a} and {b}?", "Compute {a} plus {b}."],
        "-": ["What is {a} - {b}?", "Work out {a} - {b}.", "What is {a} minus {b}?", "Subtract {b} from {a}."],
        "×": ["What is {a} × {b}?", "Calculate {a} × {b}.", "What is the product of {a} and {b}?", "What is {a} multiplied by {b}?"],
        "÷": ["What is {a} ÷ {b}?", "Work out {a} ÷ {b}.", "What is {a} divided by {b}?", "Divide {a} by {b}."]}
PRICE_T = ["A {thing} costs {p} dollars. How much do {n} of them cost?", "One {thing} costs {p} dollars. What is the price of {n} {things}?"]
PRICE_THINGS = [("ticket", "tickets"), ("sandwich", "sandwiches"), ("notebook", "notebooks"), ("bus pass", "bus passes"), ("plant", "plants")]
LEG_T = ["How many legs do {n} {animals} have altogether?", "A farmer has {n} {animals}. How many legs do they have in total?"]
LEG_ANIMALS = [("dogs", 4), ("chickens", 2), ("cows", 4), ("ducks", 2), ("spiders", 8), ("horses", 4)]


def _ans(expr: str, val: int) -> str:
    return f"{expr} = {val}. The answer is {val}."


def gen_math(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    name, items = pick(rng, NAMES), pick(rng, COUNT_ITEMS)
    cont, c1 = pick(rng, CONTAINERS)
    if r < 0.17:
        a, b = rng.randint(2, 50), rng.randint(2, 50)
        return pick(rng, ADD_T).format(name=name, a=a, b=b, items=items), None, _ans(f"{a} + {b}", a + b)
    if r < 0.34:
        a = rng.randint(10, 60)
        b = rng.randint(1, a - 1)
        return pick(rng, SUB_T).format(name=name, a=a, b=b, items=items), None, _ans(f"{a} - {b}", a - b)
    if r < 0.5:
        a, b = rng.randint(2, 10), rng.randint(2, 10)
        return pick(rng, MUL_T).format(name=name, a=a, b=b, items=items, cont=cont), None, _ans(f"{a} × {b}", a * b)
    if r < 0.64:
        m, q = rng.randint(2, 9), rng.randint(2, 10)
        n = m * q
        return pick(rng, DIV_T).format(name=name, n=n, m=m, items=items, cont=cont, c1=c1), None, _ans(f"{n} ÷ {m}", q)
    if r < 0.88:
        op = pick(rng, ["+", "-", "×", "÷"])
        if op == "+":
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            v = a + b
        elif op == "-":
            a = rng.randint(10, 99)
            b = rng.randint(1, a - 1)
            v = a - b
        elif op == "×":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            v = a * b
        else:
            b, v = rng.randint(2, 12), rng.randint(2, 12)
            a = b * v
        return pick(rng, BARE[op]).format(a=a, b=b), None, _ans(f"{a} {op} {b}", v)
    if r < 0.95:
        (thing, things), p, n = pick(rng, PRICE_THINGS), rng.randint(2, 15), rng.randint(2, 9)
        return pick(rng, PRICE_T).format(thing=thing, things=things, p=p, n=n), None, _ans(f"{n} × {p}", n * p)
    (animals, legs), n = pick(rng, LEG_ANIMALS), rng.randint(2, 9)
    return pick(rng, LEG_T).format(n=n, animals=animals), None, _ans(f"{n} × {legs}", n * legs)


# ---------------------------------------------------------------------------------------------
# coding
# ---------------------------------------------------------------------------------------------

# (description in the third person "returns ...", function name, code)
CODE_SPECS = [
    ("returns the square of a number", "square", "def square(n):\n    return n * n"),
    ("returns the cube of a number", "cube", "def cube(n):\n    return n ** 3"),
    ("checks whether a number is even", "is_even", "def is_even(n):\n    return n % 2 == 0"),
    ("checks whether a number is odd", "is_odd", "def is_odd(n):\n    return n % 2 == 1"),
    ("reverses a string", "reverse_string", "def reverse_string(s):\n    return s[::-1]"),
    ("returns the sum of a list of numbers", "sum_list", "def sum_list(numbers):\n    total = 0\n    for n in numbers:\n        total += n\n    return total"),
    ("returns the average of a list of numbers", "average", "def average(numbers):\n    return sum(numbers) / len(numbers)"),
    ("returns the largest number in a list", "largest", "def largest(numbers):\n    return max(numbers)"),
    ("returns the smallest number in a list", "smallest", "def smallest(numbers):\n    return min(numbers)"),
    ("returns the smaller of two numbers", "smaller", "def smaller(a, b):\n    if a < b:\n        return a\n    return b"),
    ("counts the vowels in a string", "count_vowels", "def count_vowels(s):\n    return sum(1 for ch in s.lower() if ch in \"aeiou\")"),
    ("converts a temperature from Celsius to Fahrenheit", "celsius_to_fahrenheit", "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32"),
    ("converts a temperature from Fahrenheit to Celsius", "fahrenheit_to_celsius", "def fahrenheit_to_celsius(f):\n    return (f - 32) * 5 / 9"),
    ("returns the area of a rectangle given its width and height", "rectangle_area", "def rectangle_area(width, height):\n    return width * height"),
    ("returns the area of a triangle given its base and height", "triangle_area", "def triangle_area(base, height):\n    return base * height / 2"),
    ("returns the area of a circle given its radius", "circle_area", "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2"),
    ("returns the factorial of a number", "factorial", "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result"),
    ("counts the words in a sentence", "count_words", "def count_words(sentence):\n    return len(sentence.split())"),
    ("converts a string to upper case", "to_upper", "def to_upper(s):\n    return s.upper()"),
    ("removes all spaces from a string", "remove_spaces", "def remove_spaces(s):\n    return s.replace(\" \", \"\")"),
    ("returns a list of the squares of the numbers in a list", "squares", "def squares(numbers):\n    return [n * n for n in numbers]"),
    ("keeps only the even numbers from a list", "even_numbers", "def even_numbers(numbers):\n    return [n for n in numbers if n % 2 == 0]"),
    ("returns the absolute value of a number", "absolute", "def absolute(n):\n    if n < 0:\n        return -n\n    return n"),
    ("returns the last item of a list", "last_item", "def last_item(items):\n    return items[-1]"),
    ("returns the first item of a list", "first_item", "def first_item(items):\n    return items[0]"),
    ("converts kilometres to miles", "km_to_miles", "def km_to_miles(km):\n    return km * 0.621371"),
    ("converts minutes to seconds", "minutes_to_seconds", "def minutes_to_seconds(minutes):\n    return minutes * 60"),
    ("returns a greeting such as \"Hello, Anna!\" for a given name", "greet", "def greet(name):\n    return f\"Hello, {name}!\""),
    ("checks whether a string is a palindrome", "is_palindrome", "def is_palindrome(s):\n    s = s.lower().replace(\" \", \"\")\n    return s == s[::-1]"),
    ("counts how many times an item appears in a list", "count_item", "def count_item(items, item):\n    return items.count(item)"),
    ("joins a list of words into one string separated by spaces", "join_words", "def join_words(words):\n    return \" \".join(words)"),
    ("checks whether a list is empty", "is_empty", "def is_empty(items):\n    return len(items) == 0"),
    ("returns the sum of the numbers from 1 to n", "sum_to_n", "def sum_to_n(n):\n    return n * (n + 1) // 2"),
    ("checks whether a number is positive", "is_positive", "def is_positive(n):\n    return n > 0"),
    ("sorts a list of numbers from smallest to largest", "sort_numbers", "def sort_numbers(numbers):\n    return sorted(numbers)"),
    ("returns the unique items of a list in sorted order", "unique_sorted", "def unique_sorted(items):\n    return sorted(set(items))"),
    ("capitalises the first letter of every word in a string", "title_case", "def title_case(s):\n    return s.title()"),
    ("returns the last character of a string", "last_char", "def last_char(s):\n    return s[-1]"),
    ("returns the length of each word in a sentence", "word_lengths", "def word_lengths(sentence):\n    return [len(word) for word in sentence.split()]"),
    ("swaps two values and returns them as a tuple", "swap", "def swap(a, b):\n    return b, a"),
    ("counts the digits of a whole number", "count_digits", "def count_digits(n):\n    return len(str(abs(n)))"),
    ("checks whether a year is a leap year", "is_leap_year", "def is_leap_year(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)"),
    ("returns the longest word in a sentence", "longest_word", "def longest_word(sentence):\n    return max(sentence.split(), key=len)"),
    ("checks whether a string contains only digits", "only_digits", "def only_digits(s):\n    return s.isdigit()"),
]
PARAM_SPECS = [  # (description with {k}, name with {k}, code with {k}, k values)
    ("multiplies a number by {k}", "multiply_by_{k}", "def multiply_by_{k}(n):\n    return n * {k}", [3, 4, 5, 7, 10]),
    ("adds {k} to a number", "add_{k}", "def add_{k}(n):\n    return n + {k}", [1, 5, 10, 100]),
    ("checks whether a number is divisible by {k}", "is_divisible_by_{k}", "def is_divisible_by_{k}(n):\n    return n % {k} == 0", [3, 5, 7, 9]),
    ("returns the first {k} characters of a string", "first_{k}_chars", "def first_{k}_chars(s):\n    return s[:{k}]", [2, 3, 5]),
    ("repeats a string {k} times", "repeat_{k}_times", "def repeat_{k}_times(s):\n    return s * {k}", [2, 3, 4]),
    ("returns a list of the numbers from 1 to {k}", "numbers_to_{k}", "def numbers_to_{k}():\n    return list(range(1, {k1}))", [5, 10, 20]),
]
INFINITIVE = {"returns": "return", "checks": "check", "reverses": "reverse", "counts": "count", "converts": "convert",
              "removes": "remove", "keeps": "keep", "joins": "join", "sorts": "sort", "capitalises": "capitalise",
              "swaps": "swap", "multiplies": "multiply", "adds": "add", "repeats": "repeat"}
CODE_TEMPLATES = ["Write a Python function that {d3}.", "Write a Python function called {name} that {d3}.",
                  "Create a function in Python to {dinf}.", "Implement {name} in Python. It should {dinf}.",
                  "I need a Python function to {dinf}.", "Give me Python code for a function that {d3}.",
                  "Show a short Python function that {d3}.", "Python: write {name}, which {d3}."]


def _all_code_specs():
    out = list(CODE_SPECS)
    for d, name, code, ks in PARAM_SPECS:
        for k in ks:
            out.append((d.format(k=k), name.format(k=k), code.format(k=k, k1=k + 1)))
    return out


def gen_coding(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    d3, name, code = pick(rng, ctx["code_specs"])
    first, rest = d3.split(" ", 1)
    dinf = f"{INFINITIVE[first]} {rest}"
    ins = pick(rng, CODE_TEMPLATES).format(d3=d3, dinf=dinf, name=name)
    return ins, None, f"```python\n{code}\n```"


# ---------------------------------------------------------------------------------------------
# translation (hand-written phrase table)
# ---------------------------------------------------------------------------------------------

PHRASES = [  # English | French | Spanish | German
    ("Good morning", "Bonjour", "Buenos días", "Guten Morgen"),
    ("Good night", "Bonne nuit", "Buenas noches", "Gute Nacht"),
    ("Thank you very much", "Merci beaucoup", "Muchas gracias", "Vielen Dank"),
    ("Please", "S'il vous plaît", "Por favor", "Bitte"),
    ("How are you?", "Comment allez-vous ?", "¿Cómo estás?", "Wie geht es dir?"),
    ("Where is the bus stop?", "Où est l'arrêt de bus ?", "¿Dónde está la parada de autobús?", "Wo ist die Bushaltestelle?"),
    ("I am hungry", "J'ai faim", "Tengo hambre", "Ich habe Hunger"),
    ("I am thirsty", "J'ai soif", "Tengo sed", "Ich habe Durst"),
    ("What time is it?", "Quelle heure est-il ?", "¿Qué hora es?", "Wie spät ist es?"),
    ("My name is Anna", "Je m'appelle Anna", "Me llamo Anna", "Ich heiße Anna"),
    ("I don't understand", "Je ne comprends pas", "No entiendo", "Ich verstehe nicht"),
    ("See you tomorrow", "À demain", "Hasta mañana", "Bis morgen"),
    ("Happy birthday", "Joyeux anniversaire", "Feliz cumpleaños", "Alles Gute zum Geburtstag"),
    ("The weather is nice today", "Il fait beau aujourd'hui", "Hace buen tiempo hoy", "Das Wetter ist heute schön"),
    ("I like reading books", "J'aime lire des livres", "Me gusta leer libros", "Ich lese gern Bücher"),
    ("Where is the bathroom?", "Où sont les toilettes ?", "¿Dónde está el baño?", "Wo ist die Toilette?"),
    ("How much does it cost?", "Combien ça coûte ?", "¿Cuánto cuesta?", "Wie viel kostet das?"),
    ("I would like a coffee, please", "Je voudrais un café, s'il vous plaît", "Quisiera un café, por favor", "Ich hätte gern einen Kaffee, bitte"),
    ("Do you speak English?", "Parlez-vous anglais ?", "¿Hablas inglés?", "Sprechen Sie Englisch?"),
    ("The book is on the table", "Le livre est sur la table", "El libro está en la mesa", "Das Buch liegt auf dem Tisch"),
    ("I live in a small town", "J'habite dans une petite ville", "Vivo en un pueblo pequeño", "Ich wohne in einer kleinen Stadt"),
    ("The dog is sleeping", "Le chien dort", "El perro está durmiendo", "Der Hund schläft"),
    ("We are going to the beach", "Nous allons à la plage", "Vamos a la playa", "Wir gehen an den Strand"),
    ("The red car", "La voiture rouge", "El coche rojo", "Das rote Auto"),
    ("I have two brothers", "J'ai deux frères", "Tengo dos hermanos", "Ich habe zwei Brüder"),
    ("Good luck", "Bonne chance", "Buena suerte", "Viel Glück"),
    ("Welcome", "Bienvenue", "Bienvenido", "Willkommen"),
    ("Excuse me", "Excusez-moi", "Disculpe", "Entschuldigung"),
    ("I am tired", "Je suis fatigué", "Estoy cansado", "Ich bin müde"),
    ("It is very cold", "Il fait très froid", "Hace mucho frío", "Es ist sehr kalt"),
    ("Open the window, please", "Ouvrez la fenêtre, s'il vous plaît", "Abra la ventana, por favor", "Öffnen Sie bitte das Fenster"),
    ("The children are at school", "Les enfants sont à l'école", "Los niños están en la escuela", "Die Kinder sind in der Schule"),
    ("I need a doctor", "J'ai besoin d'un médecin", "Necesito un médico", "Ich brauche einen Arzt"),
    ("The shop is closed", "Le magasin est fermé", "La tienda está cerrada", "Das Geschäft ist geschlossen"),
    ("My favourite colour is blue", "Ma couleur préférée est le bleu", "Mi color favorito es el azul", "Meine Lieblingsfarbe ist Blau"),
    ("Nice to meet you", "Enchanté", "Mucho gusto", "Freut mich"),
    ("I am a student", "Je suis étudiant", "Soy estudiante", "Ich bin Student"),
    ("Where do you live?", "Où habites-tu ?", "¿Dónde vives?", "Wo wohnst du?"),
    ("The bread is fresh", "Le pain est frais", "El pan está fresco", "Das Brot ist frisch"),
    ("Have a nice day", "Bonne journée", "Que tengas un buen día", "Schönen Tag noch"),
    ("Yes, of course", "Oui, bien sûr", "Sí, claro", "Ja, natürlich"),
    ("I'm sorry", "Je suis désolé", "Lo siento", "Es tut mir leid"),
    ("The train is late", "Le train est en retard", "El tren llega tarde", "Der Zug hat Verspätung"),
    ("One, two, three", "Un, deux, trois", "Uno, dos, tres", "Eins, zwei, drei"),
    ("The house is big", "La maison est grande", "La casa es grande", "Das Haus ist groß"),
    ("I like apples", "J'aime les pommes", "Me gustan las manzanas", "Ich mag Äpfel"),
    ("Today is Monday", "Aujourd'hui, c'est lundi", "Hoy es lunes", "Heute ist Montag"),
    ("Goodbye", "Au revoir", "Adiós", "Auf Wiedersehen"),
    ("The sun is shining", "Le soleil brille", "Brilla el sol", "Die Sonne scheint"),
    ("I am ten years old", "J'ai dix ans", "Tengo diez años", "Ich bin zehn Jahre alt"),
]
LANGS = ["French", "Spanish", "German"]
TRANS_TEMPLATES = [("Translate into {lang}: {en}", False), ("Translate this phrase into {lang}.", True),
                   ("How do you say \"{en}\" in {lang}?", False), ("What is \"{en}\" in {lang}?", False),
                   ("Give the {lang} translation of \"{en}\".", False), ("Say this in {lang}.", True),
                   ("Translate the following English text to {lang}.", True), ("{lang} translation, please: {en}", False)]


def gen_translation_all(rng: random.Random) -> list:
    out = []
    for row in PHRASES:
        for li, lang in enumerate(LANGS):
            tmpl, uses_input = pick(rng, TRANS_TEMPLATES)
            en, target = row[0], row[1 + li]
            if uses_input:
                out.append((tmpl.format(lang=lang), en, target))
            else:
                out.append((tmpl.format(lang=lang, en=en), None, target))
    return out


# ---------------------------------------------------------------------------------------------
# factual_qa (capitals and science facts hand-written; definitions from WordNet glosses)
# ---------------------------------------------------------------------------------------------

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Spain", "Madrid"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"),
            ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"),
            ("Greece", "Athens"), ("Austria", "Vienna"), ("Hungary", "Budapest"), ("the Czech Republic", "Prague"),
            ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Russia", "Moscow"), ("Egypt", "Cairo"),
            ("Kenya", "Nairobi"), ("Nigeria", "Abuja"), ("Ghana", "Accra"), ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"),
            ("China", "Beijing"), ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"),
            ("Indonesia", "Jakarta"), ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Iran", "Tehran"),
            ("Turkey", "Ankara"), ("Canada", "Ottawa"), ("the United States", "Washington, D.C."), ("Mexico", "Mexico City"),
            ("Cuba", "Havana"), ("Peru", "Lima"), ("Argentina", "Buenos Aires"), ("Chile", "Santiago"), ("Colombia", "Bogotá"),
            ("Brazil", "Brasília"), ("Australia", "Canberra"), ("New Zealand", "Wellington"), ("the United Kingdom", "London"),
            ("Scotland", "Edinburgh"), ("Switzerland", "Bern"), ("Iceland", "Reykjavik"), ("Saudi Arabia", "Riyadh"),
            ("the Philippines", "Manila"), ("Venezuela", "Caracas")]
CAPITAL_TEMPLATES = [("What is the capital of {c}?", "full"), ("Name the capital city of {c}.", "short"),
                     ("What is {c}'s capital?", "full"), ("Tell me the capital of {c}.", "full"),
                     ("Capital of {c}?", "short"), ("What city is the capital of {c}?", "full")]
SCIENCE = [
    (["How many legs does a spider have?", "How many legs do spiders have?"], "A spider has eight legs."),
    (["How many legs does an insect have?"], "An insect has six legs."),
    (["What planet is closest to the Sun?", "Which planet is nearest to the Sun?"], "Mercury is the planet closest to the Sun."),
    (["What is the largest planet in our solar system?", "Which planet is the biggest in the solar system?"], "Jupiter is the largest planet in our solar system."),
    (["Which planet is known as the Red Planet?"], "Mars is known as the Red Planet."),
    (["How many continents are there?"], "There are seven continents."),
    (["What is the largest ocean on Earth?", "Which ocean is the biggest?"], "The Pacific Ocean is the largest ocean on Earth."),
    (["What gas do humans need to breathe in to live?"], "Humans need oxygen to live."),
    (["At what temperature does water freeze in Celsius?", "What is the freezing point of water?"], "Water freezes at 0 degrees Celsius."),
    (["At what temperature does water boil at sea level?"], "At sea level, water boils at 100 degrees Celsius."),
    (["Which organ pumps blood around the body?", "What does the heart do?"], "The heart pumps blood around the body."),
    (["What is the closest star to Earth?"], "The Sun is the closest star to Earth."),
    (["How long does it take the Earth to go around the Sun?"], "It takes the Earth about 365 days, or one year."),
    (["What is the chemical symbol for gold?"], "The chemical symbol for gold is Au."),
    (["What is the chemical symbol for iron?"], "The chemical symbol for iron is Fe."),
    (["What is H2O?", "What is the chemical formula H2O?"], "H2O is the chemical formula for water."),
    (["What is the hardest natural material?"], "Diamond is the hardest natural material."),
    (["How many bones are in the adult human body?"], "An adult human body has 206 bones."),
    (["What is the tallest animal in the world?"], "The giraffe is the tallest animal in the world."),
    (["What is the fastest land animal?"], "The cheetah is the fastest land animal."),
    (["What force keeps us on the ground?", "What pulls objects towards the Earth?"], "Gravity keeps us on the ground."),
    (["What do caterpillars turn into?"], "Caterpillars turn into butterflies or moths."),
    (["What is the main gas in the air we breathe?"], "Nitrogen is the main gas in the air, about 78 percent."),
    (["Which organ do we use to think?"], "We use the brain to think."),
    (["What are the three states of matter?"], "The three common states of matter are solid, liquid and gas."),
    (["What is the centre of an atom called?"], "The centre of an atom is called the nucleus."),
    (["How many hours are there in a day?"], "There are 24 hours in a day."),
    (["How many minutes are in an hour?"], "There are 60 minutes in an hour."),
    (["What is the tallest mountain in the world?"], "Mount Everest is the tallest mountain in the world."),
    (["What is the longest river in Africa?"], "The Nile is the longest river in Africa."),
    (["What do we call animals that eat only plants?"], "Animals that eat only plants are called herbivores."),
    (["What do we call animals that eat only meat?"], "Animals that eat only meat are called carnivores."),
    (["What causes day and night on Earth?"], "Day and night are caused by the Earth spinning on its axis."),
    (["What is the name of Earth's natural satellite?"], "Earth's natural satellite is the Moon."),
    (["Which blood cells help fight infection?"], "White blood cells help the body fight infection."),
    (["What part of the plant takes in water from the soil?"], "The roots take in water from the soil."),
    (["What colour do you get if you mix blue and yellow?"], "Mixing blue and yellow gives green."),
    (["What colour do you get if you mix red and white?"], "Mixing red and white gives pink."),
    (["How many sides does a hexagon have?"], "A hexagon has six sides."),
    (["How many sides does a triangle have?"], "A triangle has three sides."),
    (["What is the boiling point of water in Fahrenheit?"], "Water boils at 212 degrees Fahrenheit at sea level."),
    (["What is the largest desert in the world?"], "The largest desert is Antarctica; the largest hot desert is the Sahara."),
    (["Which metal is liquid at room temperature?"], "Mercury is a metal that is liquid at room temperature."),
    (["What do bats use to find their way in the dark?"], "Bats use echolocation, listening to the echoes of their own calls."),
    (["How many teeth does an adult human usually have?"], "An adult human usually has 32 teeth."),
]
DEF_NOUNS = ["library", "kettle", "river", "teacher", "island", "volcano", "bridge", "umbrella", "telescope", "passport",
             "orchestra", "desert", "glacier", "thermometer", "dentist", "carpenter", "alphabet", "pharmacy", "harbour",
             "calendar", "compass", "microscope", "canoe", "peninsula", "fossil", "parliament", "vaccine", "recipe",
             "lighthouse", "blizzard", "museum", "dictionary", "satellite", "skyscraper", "novel",
             "poem", "orchard", "violin", "magnet", "journalist", "architect", "helmet", "ladder", "sculpture",
             "battery", "cathedral", "continent", "forest", "kitchen", "mirror", "pillow", "planet", "sandwich", "wallet"]
DEF_VERBS = ["whisper", "borrow", "shiver", "chop", "rescue", "apologise", "invent", "sneeze",
             "wander", "climb", "describe", "forgive", "memorize", "float"]
DEF_ADJS = ["brave", "honest", "ancient", "fragile", "generous", "curious", "humid", "polite", "narrow", "shallow",
            "noisy", "loyal", "rapid", "tiny", "fierce", "gentle", "clumsy", "empty", "ripe", "cheerful"]
# WordNet sense (index into wn.synsets(word, pos)) where the first one is not the everyday meaning
DEF_SENSE = {"passport": 1, "fossil": 1, "battery": 1, "helmet": 1, "pharmacy": 1, "planet": 2,
             "ancient": 1, "curious": 1, "describe": 1, "apologise": 1, "cheerful": 1, "float": 1, "shiver": 1}
DEF_NO_ARTICLE = {"desert", "recipe", "satellite", "ladder", "sandwich"}  # glosses that read well without "a"/"an"
DEF_TEMPLATES = ["What does \"{w}\" mean?", "Define the word \"{w}\".", "Give a short definition of \"{w}\".",
                 "What is the meaning of the word \"{w}\"?", "Explain what \"{w}\" means in one sentence."]


def _gloss(synset) -> str:
    g = synset.definition().split(";")[0].strip()
    g = re.sub(r"\s*\([^)]*\)", "", g).strip().rstrip(".")
    g = re.sub(r",? etc$", "", g)
    return g[3:] if g.startswith("to ") else g


def build_definitions(wn) -> list:
    """(word, pos, response) for the hand-written word lists, from their first WordNet sense."""
    out = []
    for pos, words in (("n", DEF_NOUNS), ("v", DEF_VERBS), ("a", DEF_ADJS)):
        for w in words:
            syns = wn.synsets(w, pos)
            if not syns:
                continue
            g = _gloss(syns[DEF_SENSE.get(w, 0)])
            if pos == "n":
                if not re.match(r"(a|an|the|any|one|someone)\b", g) and w not in DEF_NO_ARTICLE:
                    g = f"{article(g)} {g}"
                resp = f"{article(w).capitalize()} {w} is {g}."
            elif pos == "v":
                resp = f"To {w} means to {g}."
            else:
                resp = f"\"{cap(w)}\" means {g}."
            out.append((w, pos, resp))
    return out


def gen_factual_qa(rng: random.Random, ctx) -> tuple[str, str | None, str]:
    r = rng.random()
    if r < 0.36:
        c, city = pick(rng, CAPITALS)
        t, style = pick(rng, CAPITAL_TEMPLATES)
        return t.format(c=c), None, (f"The capital of {c} is {city}." if style == "full" else f"{city}.")
    if r < 0.68:
        w, pos, resp = pick(rng, ctx["definitions"])
        t = pick(rng, DEF_TEMPLATES + (["What is {a} {w}?"] if pos == "n" else []))
        return t.format(w=w, a=article(w)), None, resp
    qs, a = pick(rng, SCIENCE)
    return pick(rng, qs), None, a


# ---------------------------------------------------------------------------------------------
# WordNet, evaluation texts, main
# ---------------------------------------------------------------------------------------------

def open_wordnet(wordnet_dir: str, tmp: str):
    """NLTK reader over Debian's wordnet-base (which lacks NLTK's ``lexnames`` file)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_general_verbs import LEXNAMES

    if not Path(wordnet_dir, "data.noun").is_file():
        sys.exit(f"WordNet not found in {wordnet_dir}: apt-get install wordnet-base")
    root = Path(tmp) / "corpora" / "wordnet"
    shutil.copytree(wordnet_dir, root, ignore=shutil.ignore_patterns("bin", "*.gz", "pixmaps", "wnres"))
    if not (root / "lexnames").exists():
        (root / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{c}\n" for i, (n, c) in enumerate(LEXNAMES)))
    nltk.data.path.append(tmp)

    class _Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _Reader(str(root), None)


SUBJECTS = {"he", "she", "they", "we", "i", "it", "you"}


def example_sentences(wn) -> list[str]:
    """WordNet example sentences of 6-14 words, plain letters, starting with a subject pronoun (so that they
    are whole clauses, not fragments), all words common (wordfreq zipf >= 3.4)."""
    from wordfreq import zipf_frequency

    seen, out = set(), []
    for pos in ("n", "v", "a", "r"):
        for s in wn.all_synsets(pos):
            for ex in s.examples():
                ex = ex.strip()
                if ex in seen or not re.fullmatch(r"[A-Za-z][A-Za-z ,']*[a-z]", ex):
                    continue
                toks = ex.replace(",", " ").split()
                if not 6 <= len(toks) <= 14 or "''" in ex or " '" in ex or toks[0].lower() not in SUBJECTS:
                    continue
                if all(zipf_frequency(t, "en") >= 3.4 for t in toks):
                    seen.add(ex)
                    out.append(ex)
    return sorted(out)


def find_paper_tsv(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    for p in (REPO.parent / "shared/paper/datasets/FinalDataset.tsv", Path("/work/shared/paper/datasets/FinalDataset.tsv")):
        if p.is_file():
            return p
    return None


def evaluation_texts(paper_tsv: Path | None) -> dict[str, list[str]]:
    texts = {"demo_prompts": [], "following_eval": [], "paper_tsv": []}
    for line in (REPO / "tuneshift/data/bundled/demo_prompts.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts["demo_prompts"].append(json.loads(line)["prompt"])
    for line in (REPO / "tuneshift/data/bundled/following_eval.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            texts["following_eval"].append(user_text(rec["instruction"], rec.get("input")))
    if paper_tsv is not None:
        from tuneshift.data.prompts import read_prompts  # the project's reader of FinalDataset.tsv (/n -> newline)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            texts["paper_tsv"] = [r.prompt for r in read_prompts(paper_tsv).records]
    return texts


GENERATORS = {"open_writing": gen_open_writing, "rewriting": gen_rewriting, "summarising": gen_summarising,
              "classification": gen_classification, "extraction": gen_extraction, "brainstorming": gen_brainstorming,
              "math": gen_math, "coding": gen_coding, "factual_qa": gen_factual_qa}


def record_text(ins: str, inp: str | None, resp: str) -> str:
    return f"{user_text(ins, inp)}\n\n{resp}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "data/tuning/corpus.jsonl"))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--per-task", type=int, default=140, help="records generated per task before filtering")
    ap.add_argument("--paper-tsv", default=None, help="the paper's FinalDataset.tsv (default: looked for next to the repo)")
    ap.add_argument("--wordnet", default=WORDNET_DIR)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    paper = find_paper_tsv(args.paper_tsv)
    if args.paper_tsv and not paper.is_file():
        sys.exit(f"--paper-tsv {paper} does not exist")
    ev = evaluation_texts(paper)
    eval_grams: set = set()
    for group in ev.values():
        for t in group:
            eval_grams |= word_ngrams(t)
    print(f"evaluation texts: demo_prompts={len(ev['demo_prompts'])}, following_eval={len(ev['following_eval'])}, "
          f"paper_tsv={len(ev['paper_tsv'])} ({paper if paper else 'not found'}); {len(eval_grams)} distinct 8-grams")

    with tempfile.TemporaryDirectory() as tmp:
        wn = open_wordnet(args.wordnet, tmp)
        examples = example_sentences(wn)
        definitions = build_definitions(wn)

        def is_word(t: str) -> bool:
            return bool(wn.synsets(t.lower())) or t.lower() in COMMON_FUNCTION_WORDS

        ctx = {"examples": examples, "definitions": definitions, "is_word": is_word, "code_specs": _all_code_specs()}
        print(f"WordNet: {len(examples)} usable example sentences, {len(definitions)} definitions")

        records, stats = [], {}
        for task in TASKS:
            seen, cands, dups = set(), [], 0
            if task == "translation":
                raw = gen_translation_all(rng)
                attempts = iter(raw)
            else:
                attempts = (GENERATORS[task](rng, ctx) for _ in range(args.per_task * 20))
            for item in attempts:
                if len(cands) >= args.per_task:
                    break
                if item is None:
                    continue
                if item in seen:
                    dups += 1
                    continue
                seen.add(item)
                cands.append(item)
            kept = [c for c in cands if not (word_ngrams(record_text(*c)) & eval_grams)]
            stats[task] = (len(cands), dups, len(cands) - len(kept), len(kept))
            for i, (ins, inp, resp) in enumerate(kept, 1):
                rec = {"id": f"{task}_{i:04d}", "task": task, "instruction": ins}
                if inp:
                    rec["input"] = inp
                rec["response"] = resp
                records.append(rec)

    rng.shuffle(records)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{'task':<16}{'generated':>10}{'duplicates':>12}{'overlap':>9}{'written':>9}")
    for task, (g, d, o, w) in stats.items():
        print(f"{task:<16}{g:>10}{d:>12}{o:>9}{w:>9}")
    tot = [sum(s[i] for s in stats.values()) for i in range(4)]
    print(f"{'total':<16}{tot[0]:>10}{tot[1]:>12}{tot[2]:>9}{tot[3]:>9}")
    print(f"wrote {len(records)} records to {out}")


if __name__ == "__main__":
    main()
