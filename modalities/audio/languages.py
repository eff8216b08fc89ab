"""The offline ``spoken-languages`` set: Voxforge's 6-language task (de, en, es, fr, it, ru) spoken by espeak-ng.

Every "speaker" is one espeak-ng voice variant (``m1``, ``f3``, ``klatt``, ...) at its own pitch and speed, and
reads a few utterances of 8-12 common words of its language, each utterance at a slightly different pitch and
speed with a little background noise. The set is written in Voxforge's own layout
(``LANG/SPEAKER-DATE-ID/wav/*.wav``), so it is read by the very same loader, split by speaker. Each language
has 30 training and 6 test speakers; the 6 test variants are the same in every language and heard in training in
none, so a voice says nothing about the language. Test speakers read words that are never heard in training
(each language's list is split in half). Built once (a few hundred espeak-ng calls run in parallel) and cached.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aip.cache import synthetic_set
from modalities.audio.corpora import VOXFORGE_LANGUAGES, in_test, voxforge_speaker
from modalities.audio.espeak import Voice, executable, spoken
from modalities.audio.keywords import noise_files

#: 48 common words per language (same meanings, in the order of the English list); even positions are read by
#: training speakers, odd ones by test speakers
WORDS = {
    "de": "Haus Wasser Morgen Fenster Garten Fluss Berg Brot Freund Brief Tisch Straße Stadt Sommer Winter Abend "
          "Wald Musik Arzt Lehrer Küche Markt Insel Dorf Familie Tier gelb Kirche grün klein schnell langsam "
          "immer niemals heute übermorgen Frage Antwort Reise Abendessen Kaffee Papier Minute Zahl Leute Land "
          "Geld Bild",
    "en": "house water morning window garden river mountain bread friend letter table street city summer winter "
          "evening forest music doctor teacher kitchen market island village family animal yellow church green "
          "little quickly slowly always never today tomorrow question answer journey dinner coffee paper minute "
          "number people country money picture",
    "es": "casa agua mañana ventana jardín río montaña pan amigo carta mesa calle ciudad verano invierno tarde "
          "bosque música médico maestro cocina mercado isla pueblo familia animal amarillo iglesia verde pequeño "
          "rápido despacio siempre nunca hoy pasado pregunta respuesta viaje cena café papel minuto número gente "
          "país dinero cuadro",
    "fr": "maison eau matin fenêtre jardin rivière montagne pain ami lettre table rue ville été hiver soir forêt "
          "musique médecin professeur cuisine marché île village famille animal jaune église vert petit vite "
          "lentement toujours jamais aujourd'hui demain question réponse voyage dîner café papier minute nombre "
          "gens pays argent tableau",
    "it": "casa acqua mattina finestra giardino fiume montagna pane amico lettera tavolo strada città estate "
          "inverno sera bosco musica medico maestro cucina mercato isola villaggio famiglia animale giallo chiesa "
          "verde piccolo veloce piano sempre mai oggi domani domanda risposta viaggio cena caffè carta minuto "
          "numero gente paese denaro quadro",
    "ru": "дом вода утро окно сад река гора хлеб друг письмо стол улица город лето зима вечер лес музыка врач "
          "учитель кухня рынок остров деревня семья животное жёлтый церковь зелёный маленький быстро медленно "
          "всегда никогда сегодня завтра вопрос ответ путешествие ужин кофе бумага минута число люди страна "
          "деньги картина",
}
#: espeak-ng's voice variants (``espeak-ng --voices=variant``): the speakers of every language
VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "klatt", "klatt2", "klatt3",
            "klatt4", "croak", "Adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Antonio", "Belinda", "Boris",
            "David", "Ed", "Gene", "Henrique", "Iven", "Linda", "Marco", "Max", "grandma", "grandpa")
#: the test speakers' variants, the same in every language and heard in none in training
TEST_VARIANTS = ("m4", "f4", "klatt3", "Andrea", "Linda", "grandpa")
RATE = 16_000
VERSION = 3


def speaker_name(lang: str, variant: str, *, test: bool) -> str:
    """A Voxforge-style speaker name for ``variant`` in ``lang`` that the Voxforge split (a hash of language and
    speaker) puts into the test split exactly when ``test``: the first of ``espeakLANGVARIANTsN`` that does."""
    for n in range(1000):
        name = f"espeak{lang}{variant}s{n}"
        if in_test("voxforge", lang, voxforge_speaker(name)) == test:
            return name
    raise AssertionError("no speaker name found")  # the hash puts ~20 % into the test split: never reached


def speakers(lang_i: int) -> list[tuple[str, bool]]:  # noqa: ARG001 - the same variants for every language
    """``(variant, is_test)`` of language ``lang_i``'s speakers. The test variants are the same in every language
    and heard in none in training: a variant missing from one language's training speakers only would be a
    cue against that language (measured: Italian test voices, heard in training as Spanish, were taken for
    Spanish)."""
    return [(v, v in TEST_VARIANTS) for v in VARIANTS]


def _utterance(lang: str, text: str, voice: Voice, seed: list[int], *, tmp: Path, noise: list[np.ndarray],
               resample: torch.nn.Module) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wave = spoken(text, voice, tmp / f"{'-'.join(map(str, seed))}.wav", rate=RATE, resample=resample, margin=0.1)
    wave = wave / max(np.abs(wave).max(), 1e-6) * rng.uniform(0.2, 0.9)
    bg = noise[int(rng.integers(len(noise)))]
    reps = -(-wave.size // bg.size)
    bg = np.tile(bg, reps)[int(rng.integers(0, bg.size)):][: wave.size]
    bg = np.pad(bg, (0, wave.size - bg.size), mode="wrap")
    rms = lambda a: float(np.sqrt(np.mean(a**2)) + 1e-9)  # noqa: E731
    wave = wave + bg * (rms(wave) / rms(bg)) / 10 ** (rng.uniform(15, 40) / 20)
    return np.clip(wave, -1, 1).astype(np.float32)


def build_language_set(root: Path, *, utterances: int = 6, workers: int = 4) -> Path:
    """Build (once) the espeak-ng language set under ``root`` and return its folder.

    Args:
        root: parent folder; the set goes to ``root/spoken-languages-vV-HASH`` (HASH names the arguments).
        utterances: utterances per speaker (2-9 s each, 3.7 s typical).
        workers: espeak-ng processes run at once.
    """
    return synthetic_set(root, "spoken-languages", version=VERSION, params=(utterances, WORDS, VARIANTS),
                         complete=lambda folder: all((folder / lang).is_dir() for lang in VOXFORGE_LANGUAGES),
                         write=lambda part: _write_language_set(part, utterances=utterances, workers=workers))


def _write_language_set(part: Path, *, utterances: int, workers: int) -> None:
    executable()  # fail early, with one line, if espeak-ng is missing
    import torchaudio.transforms as T

    resample = T.Resample(22_050, RATE)
    noise = list(noise_files(RATE, 20, seed=VERSION).values())
    jobs = []
    for li, lang in enumerate(VOXFORGE_LANGUAGES):
        words = WORDS[lang].split()
        for vi, (variant, test) in enumerate(speakers(li)):
            rng = np.random.default_rng([VERSION, li, vi])
            pitch, speed = int(rng.integers(20, 81)), int(rng.integers(130, 200))
            pool = words[1::2] if test else words[0::2]
            archive = f"{speaker_name(lang, variant, test=test)}-20261201-{lang}{vi}"
            for u in range(utterances):
                text = " ".join(rng.choice(pool, size=int(rng.integers(8, 13)), replace=False))
                voice = Voice(f"{lang}+{variant}", pitch=int(np.clip(pitch + rng.integers(-8, 9), 0, 99)),
                              speed=int(speed + rng.integers(-15, 16)))
                jobs.append((f"{lang}/{archive}/wav/u{u:02d}.wav", lang, text, voice, [VERSION, li, vi, u]))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        waves = pool.map(lambda j: _utterance(*j[1:], tmp=Path(tmp), noise=noise, resample=resample), jobs)
        for (rel, *_), wave in zip(jobs, waves):
            (part / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(part / rel), wave, RATE, subtype="PCM_16")
