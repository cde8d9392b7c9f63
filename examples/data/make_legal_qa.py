"""Generate the synthetic tenancy-law QA set that ships with the examples (deterministic, seeded).

Every fact is one rule of the *fictional* "Residential Tenancy Act" of a fictional place (Valmora,
Eastmere, ...): a hand-written sentence template per topic (deposit return, notice periods, repairs, ...)
in English, German and Spanish, filled with a place, a section number and a number drawn from the
topic's range. The same topic exists in several places with different numbers, so the passages of the
other places are hard negatives: a retriever has to match the place and the topic, not just the topic.
Places without questions and procedural notes ("The Act was passed in ...") add further distractors
(two more places in the BEIR corpus only, to keep the shipped files small).

Writes, under ``--out`` (default: this folder):

- ``legal_qa_beir/``: a BEIR folder in English: ``corpus.jsonl`` (one passage per rule or note: title
  "Residential Tenancy Act of <place>, section <n>", text = the rule and one more sentence),
  ``queries.jsonl`` and ``qrels/train.tsv`` / ``qrels/test.tsv`` (disjoint questions, split with
  :func:`pyterrier_hybrid.datasets.beir.split_groups`, test fraction 0.3, seed 0);
- ``legal_qa_lareqa/{en,de,es}.json``: the same rules as LAReQA-style JSON (SQuAD v1.1 with
  ``sentences`` / ``sentence_breaks`` per paragraph); a question's ``id`` is shared by its translations
  and equals the BEIR query id, so ``lareqa_dir_to_beir(..., test_fraction=0.3, seed=0)`` puts the same
  questions in its test split as the BEIR folder.

    python examples/data/make_legal_qa.py            # rewrite the shipped files
    python examples/data/make_legal_qa.py --check    # exit 1 if the shipped files differ from a fresh build
"""

from __future__ import annotations

import argparse
import filecmp
import json
import random
import sys
import tempfile
from pathlib import Path

import pandas as pd

from pyterrier_hybrid.datasets.beir import split_groups, write_beir_folder

HERE = Path(__file__).resolve().parent
LANGS = ("en", "de", "es")
PLACES = ("Valmora", "Eastmere", "Brackenridge", "Solvania", "Port Ardent", "Kestrel Isles")  # with questions
EXTRA_PLACES = ("Halvergate", "Mirrowdale")  # rules without questions: distractors only
BEIR_ONLY_PLACES = ("Fenwick Downs", "Ostervale")  # more distractors, in the (English) BEIR corpus only
TEST_FRACTION, SPLIT_SEED = 0.3, 0

ACT = {"en": "Residential Tenancy Act of {place}", "de": "Wohnraummietgesetz von {place}",
       "es": "Ley de Arrendamientos Residenciales de {place}"}

# topic -> (number range (low, high, step), elaboration for the English passage,
#           {lang: (rule sentence, (question phrasing 1, question phrasing 2))}); {n} is the answer.
TOPICS: dict[str, tuple[tuple[int, int, int], str, dict[str, tuple[str, tuple[str, str]]]]] = {
    "deposit-return": ((10, 45, 1), "Deductions are allowed only for unpaid rent or damage beyond normal wear and "
                                    "tear.", {
        "en": ("Under section {sec} of the Residential Tenancy Act of {place}, a landlord must return the security "
               "deposit within {n} days after the tenancy ends.",
               ("Within how many days must a landlord in {place} return the security deposit?",
                "How long does a landlord in {place} have to pay back a tenant's deposit after the lease ends?")),
        "de": ("Nach § {sec} des Wohnraummietgesetzes von {place} muss der Vermieter die Mietkaution innerhalb von "
               "{n} Tagen nach Ende des Mietverhältnisses zurückzahlen.",
               ("Innerhalb wie vieler Tage muss ein Vermieter in {place} die Mietkaution zurückzahlen?",
                "Wie lange hat ein Vermieter in {place} Zeit, die Kaution nach Mietende zu erstatten?")),
        "es": ("Según el artículo {sec} de la Ley de Arrendamientos Residenciales de {place}, el arrendador debe "
               "devolver la fianza en un plazo de {n} días tras el fin del contrato.",
               ("¿En cuántos días debe un arrendador de {place} devolver la fianza?",
                "¿Cuánto tiempo tiene un arrendador de {place} para reembolsar la fianza al terminar el contrato?")),
    }),
    "deposit-cap": ((5, 25, 1), "The deposit must be held in a separate trust account.", {
        "en": ("Section {sec} of the Residential Tenancy Act of {place} caps the security deposit at {n} percent of "
               "the annual rent.",
               ("What is the maximum security deposit in {place}?",
                "What share of the annual rent may a security deposit be in {place}?")),
        "de": ("§ {sec} des Wohnraummietgesetzes von {place} begrenzt die Mietkaution auf {n} Prozent der Jahresmiete.",
               ("Wie hoch darf die Mietkaution in {place} höchstens sein?",
                "Welchen Anteil der Jahresmiete darf die Kaution in {place} betragen?")),
        "es": ("El artículo {sec} de la Ley de Arrendamientos Residenciales de {place} limita la fianza al {n} por "
               "ciento del alquiler anual.",
               ("¿Cuál es la fianza máxima permitida en {place}?",
                "¿Qué parte del alquiler anual puede suponer la fianza en {place}?")),
    }),
    "rent-increase-notice": ((30, 120, 5), "A notice that does not state the new rent and its start date is void.", {
        "en": ("A landlord in {place} must give written notice at least {n} days before a rent increase takes "
               "effect (section {sec}).",
               ("How much notice must a landlord in {place} give before raising the rent?",
                "How many days in advance must tenants in {place} be told about a rent increase?")),
        "de": ("Ein Vermieter in {place} muss eine Mieterhöhung mindestens {n} Tage vor ihrem Inkrafttreten "
               "schriftlich ankündigen (§ {sec}).",
               ("Wie früh muss ein Vermieter in {place} eine Mieterhöhung ankündigen?",
                "Wie viele Tage im Voraus müssen Mieter in {place} über eine Mieterhöhung informiert werden?")),
        "es": ("En {place}, el arrendador debe notificar por escrito una subida del alquiler con al menos {n} días "
               "de antelación (artículo {sec}).",
               ("¿Con cuánta antelación debe un arrendador de {place} avisar de una subida del alquiler?",
                "¿Con cuántos días de antelación hay que informar a los inquilinos de {place} de una subida del "
                "alquiler?")),
    }),
    "rent-increase-interval": ((6, 24, 6), "The interval is counted from the date the previous increase took effect.", {
        "en": ("Under section {sec} of the Residential Tenancy Act of {place}, rent may be increased no more than "
               "once every {n} months.",
               ("How often may the rent be increased in {place}?",
                "What is the minimum interval between two rent increases in {place}?")),
        "de": ("Gemäß § {sec} des Wohnraummietgesetzes von {place} darf die Miete höchstens einmal alle {n} Monate "
               "erhöht werden.",
               ("Wie oft darf die Miete in {place} erhöht werden?",
                "Welcher Mindestabstand gilt in {place} zwischen zwei Mieterhöhungen?")),
        "es": ("Según el artículo {sec} de la Ley de Arrendamientos Residenciales de {place}, el alquiler solo "
               "puede subirse una vez cada {n} meses.",
               ("¿Con qué frecuencia se puede subir el alquiler en {place}?",
                "¿Cuál es el intervalo mínimo entre dos subidas del alquiler en {place}?")),
    }),
    "tenant-notice": ((2, 12, 1), "Fixed-term leases end on the date stated in the agreement.", {
        "en": ("A tenant in {place} with a periodic lease may end the tenancy by giving {n} weeks' written notice "
               "(section {sec}).",
               ("How much notice must a tenant in {place} give to end a periodic lease?",
                "How many weeks' notice does a tenant in {place} need to give before moving out?")),
        "de": ("Ein Mieter in {place} mit unbefristetem Vertrag kann das Mietverhältnis mit einer Frist von {n} "
               "Wochen schriftlich kündigen (§ {sec}).",
               ("Mit welcher Frist kann ein Mieter in {place} einen unbefristeten Mietvertrag kündigen?",
                "Wie viele Wochen Kündigungsfrist hat ein Mieter in {place} vor dem Auszug?")),
        "es": ("Un inquilino de {place} con contrato indefinido puede rescindirlo avisando por escrito con {n} "
               "semanas de antelación (artículo {sec}).",
               ("¿Con cuánta antelación debe avisar un inquilino de {place} para rescindir un contrato indefinido?",
                "¿Cuántas semanas de preaviso necesita un inquilino de {place} antes de dejar la vivienda?")),
    }),
    "urgent-repairs": ((12, 72, 12), "If the landlord does not act, the tenant may arrange the repair and deduct "
                                     "the reasonable cost from the rent.", {
        "en": ("Urgent repairs, such as a burst pipe or a broken heater, must be started within {n} hours of the "
               "tenant's report under section {sec} of the Act of {place}.",
               ("How quickly must urgent repairs be started in {place}?",
                "Within how many hours must a landlord in {place} deal with a burst pipe?")),
        "de": ("Dringende Reparaturen, etwa bei einem Rohrbruch oder einer defekten Heizung, müssen nach § {sec} "
               "des Gesetzes von {place} innerhalb von {n} Stunden nach der Meldung des Mieters beginnen.",
               ("Wie schnell müssen dringende Reparaturen in {place} beginnen?",
                "Innerhalb wie vieler Stunden muss sich ein Vermieter in {place} um einen Rohrbruch kümmern?")),
        "es": ("Las reparaciones urgentes, como una tubería rota o una calefacción averiada, deben comenzar dentro "
               "de las {n} horas siguientes al aviso del inquilino según el artículo {sec} de la ley de {place}.",
               ("¿Con qué rapidez deben empezar las reparaciones urgentes en {place}?",
                "¿En cuántas horas debe ocuparse un arrendador de {place} de una tubería rota?")),
    }),
    "entry-notice": ((12, 72, 12), "Entry is allowed only between 8 a.m. and 8 p.m. unless the tenant agrees "
                                   "otherwise.", {
        "en": ("Except in an emergency, a landlord in {place} must give at least {n} hours' notice before entering "
               "the rental unit (section {sec}).",
               ("How much notice must a landlord in {place} give before entering the flat?",
                "Can a landlord in {place} enter the rental unit without warning?")),
        "de": ("Außer im Notfall muss ein Vermieter in {place} mindestens {n} Stunden vorher ankündigen, dass er "
               "die Wohnung betreten will (§ {sec}).",
               ("Wie lange vorher muss ein Vermieter in {place} ankündigen, dass er die Wohnung betritt?",
                "Darf ein Vermieter in {place} die Mietwohnung ohne Vorwarnung betreten?")),
        "es": ("Salvo en caso de emergencia, el arrendador de {place} debe avisar con al menos {n} horas de "
               "antelación antes de entrar en la vivienda (artículo {sec}).",
               ("¿Con cuánta antelación debe avisar un arrendador de {place} antes de entrar en el piso?",
                "¿Puede un arrendador de {place} entrar en la vivienda sin avisar?")),
    }),
    "late-fee": ((1, 10, 1), "No fee may be charged for a payment that is less than three days late.", {
        "en": ("Section {sec} of the Residential Tenancy Act of {place} limits late payment fees to {n} percent "
               "of the monthly rent.",
               ("What is the highest late fee a landlord in {place} may charge?",
                "How much can tenants in {place} be charged for paying the rent late?")),
        "de": ("§ {sec} des Wohnraummietgesetzes von {place} begrenzt Säumnisgebühren auf {n} Prozent der "
               "Monatsmiete.",
               ("Wie hoch darf eine Säumnisgebühr in {place} höchstens sein?",
                "Wie viel darf Mietern in {place} für eine verspätete Mietzahlung berechnet werden?")),
        "es": ("El artículo {sec} de la Ley de Arrendamientos Residenciales de {place} limita los recargos por "
               "demora al {n} por ciento del alquiler mensual.",
               ("¿Cuál es el recargo por demora máximo que puede cobrar un arrendador en {place}?",
                "¿Cuánto se puede cobrar a los inquilinos de {place} por pagar el alquiler con retraso?")),
    }),
    "sublet-reply": ((7, 30, 1), "Consent may only be refused for a reason related to the proposed subtenant.", {
        "en": ("If a tenant in {place} asks to sublet, the landlord must answer within {n} days, and silence counts "
               "as consent (section {sec}).",
               ("How long does a landlord in {place} have to answer a subletting request?",
                "What happens if a landlord in {place} does not reply to a request to sublet?")),
        "de": ("Bittet ein Mieter in {place} um Erlaubnis zur Untervermietung, muss der Vermieter innerhalb von "
               "{n} Tagen antworten; Schweigen gilt als Zustimmung (§ {sec}).",
               ("Wie lange hat ein Vermieter in {place} Zeit, auf eine Anfrage zur Untervermietung zu antworten?",
                "Was passiert, wenn ein Vermieter in {place} auf eine Anfrage zur Untervermietung nicht "
                "antwortet?")),
        "es": ("Si un inquilino de {place} pide subarrendar, el arrendador debe responder en {n} días y el silencio "
               "equivale a consentimiento (artículo {sec}).",
               ("¿Cuánto tiempo tiene un arrendador de {place} para responder a una solicitud de subarriendo?",
                "¿Qué ocurre si un arrendador de {place} no responde a una petición de subarriendo?")),
    }),
    "tribunal-deadline": ((14, 90, 1), "The tribunal may extend the deadline in exceptional circumstances.", {
        "en": ("An application to the Tenancy Tribunal of {place} must be filed within {n} days of the disputed "
               "notice (section {sec}).",
               ("What is the deadline for applying to the Tenancy Tribunal of {place}?",
                "How many days does a tenant in {place} have to challenge a notice before the tribunal?")),
        "de": ("Ein Antrag beim Mietgericht von {place} muss innerhalb von {n} Tagen nach Zugang der strittigen "
               "Mitteilung gestellt werden (§ {sec}).",
               ("Welche Frist gilt für einen Antrag beim Mietgericht von {place}?",
                "Wie viele Tage hat ein Mieter in {place}, um eine Mitteilung vor Gericht anzufechten?")),
        "es": ("La solicitud ante el Tribunal de Arrendamientos de {place} debe presentarse en un plazo de {n} días "
               "desde la notificación impugnada (artículo {sec}).",
               ("¿Cuál es el plazo para acudir al Tribunal de Arrendamientos de {place}?",
                "¿Cuántos días tiene un inquilino de {place} para impugnar una notificación ante el tribunal?")),
    }),
    "pet-deposit": ((10, 50, 5), "Assistance animals are exempt from pet deposits.", {
        "en": ("In {place}, a pet damage deposit may not exceed {n} percent of one month's rent (section {sec}).",
               ("How large may a pet deposit be in {place}?",
                "What is the cap on a pet damage deposit in {place}?")),
        "de": ("In {place} darf eine Kaution für Schäden durch Haustiere {n} Prozent einer Monatsmiete nicht "
               "übersteigen (§ {sec}).",
               ("Wie hoch darf eine Haustierkaution in {place} sein?",
                "Welche Obergrenze gilt in {place} für eine Kaution für Schäden durch Haustiere?")),
        "es": ("En {place}, el depósito por daños de mascotas no puede superar el {n} por ciento de un mes de "
               "alquiler (artículo {sec}).",
               ("¿De cuánto puede ser el depósito por mascotas en {place}?",
                "¿Cuál es el límite del depósito por daños de mascotas en {place}?")),
    }),
    "heating": ((17, 22, 1), "A heating failure in winter counts as an urgent repair.", {
        "en": ("From October to April, a landlord in {place} must keep the heating able to reach at least {n} "
               "degrees Celsius in living rooms (section {sec}).",
               ("What minimum temperature must the heating reach in rented homes in {place}?",
                "How warm must a landlord in {place} be able to heat the living room in winter?")),
        "de": ("Von Oktober bis April muss ein Vermieter in {place} sicherstellen, dass die Heizung Wohnräume auf "
               "mindestens {n} Grad Celsius erwärmen kann (§ {sec}).",
               ("Welche Mindesttemperatur muss die Heizung in Mietwohnungen in {place} erreichen?",
                "Wie warm muss ein Vermieter in {place} das Wohnzimmer im Winter heizen können?")),
        "es": ("De octubre a abril, el arrendador de {place} debe garantizar que la calefacción alcance al menos "
               "{n} grados centígrados en las estancias (artículo {sec}).",
               ("¿Qué temperatura mínima debe alcanzar la calefacción en las viviendas de alquiler de {place}?",
                "¿Cuánto debe poder calentar un arrendador de {place} el salón en invierno?")),
    }),
    "eviction-fine": ((2000, 20000, 500), "The tenant may also claim compensation for the costs of the eviction.", {
        "en": ("A landlord who evicts a tenant in {place} without a tribunal order can be fined up to {n} crowns "
               "(section {sec}).",
               ("What is the maximum fine for an unlawful eviction in {place}?",
                "How much can a landlord in {place} be fined for evicting a tenant without an order?")),
        "de": ("Ein Vermieter, der in {place} einen Mieter ohne gerichtliche Anordnung räumt, kann mit bis zu {n} "
               "Kronen bestraft werden (§ {sec}).",
               ("Wie hoch ist die Höchststrafe für eine rechtswidrige Räumung in {place}?",
                "Welche Geldstrafe droht einem Vermieter in {place}, der ohne Anordnung räumt?")),
        "es": ("El arrendador que desaloje a un inquilino en {place} sin orden del tribunal puede ser multado con "
               "hasta {n} coronas (artículo {sec}).",
               ("¿Cuál es la multa máxima por un desalojo ilegal en {place}?",
                "¿Qué multa arriesga un arrendador de {place} que desaloja sin orden?")),
    }),
    "inspection": ((3, 14, 1), "A copy of the signed report must be given to the tenant.", {
        "en": ("The move-in inspection report must be signed by both parties within {n} days of the start of a "
               "tenancy in {place} (section {sec}).",
               ("When must the move-in inspection report be signed in {place}?",
                "Within how many days do landlord and tenant in {place} sign the move-in inspection?")),
        "de": ("Das Übergabeprotokoll beim Einzug muss in {place} innerhalb von {n} Tagen nach Beginn des "
               "Mietverhältnisses von beiden Parteien unterschrieben werden (§ {sec}).",
               ("Bis wann muss das Übergabeprotokoll beim Einzug in {place} unterschrieben werden?",
                "Innerhalb wie vieler Tage unterschreiben Vermieter und Mieter in {place} das Einzugsprotokoll?")),
        "es": ("El acta de inspección de entrada debe ser firmada por ambas partes dentro de los {n} días "
               "siguientes al inicio del arrendamiento en {place} (artículo {sec}).",
               ("¿Cuándo debe firmarse el acta de inspección de entrada en {place}?",
                "¿En cuántos días firman arrendador e inquilino de {place} el acta de entrada?")),
    }),
    "abandoned-property": ((14, 60, 1), "Personal documents and photographs may never be sold and must be "
                                        "returned on request.", {
        "en": ("Belongings that a tenant leaves behind in {place} must be stored for at least {n} days before the "
               "landlord may sell them (section {sec}).",
               ("How long must a landlord in {place} keep a former tenant's belongings?",
                "After how many days may a landlord in {place} sell things a tenant left behind?")),
        "de": ("Gegenstände, die ein Mieter in {place} zurücklässt, müssen mindestens {n} Tage aufbewahrt werden, "
               "bevor der Vermieter sie verkaufen darf (§ {sec}).",
               ("Wie lange muss ein Vermieter in {place} die Sachen eines ausgezogenen Mieters aufbewahren?",
                "Nach wie vielen Tagen darf ein Vermieter in {place} zurückgelassene Gegenstände verkaufen?")),
        "es": ("Los objetos que un inquilino deja en {place} deben guardarse al menos {n} días antes de que el "
               "arrendador pueda venderlos (artículo {sec}).",
               ("¿Cuánto tiempo debe guardar un arrendador de {place} las pertenencias de un antiguo inquilino?",
                "¿Después de cuántos días puede un arrendador de {place} vender los objetos abandonados?")),
    }),
}

# Procedural notes (no question asks for them): {place}, {sec}, {year}, {year2}, {n}.
NOTES: dict[str, dict[str, str]] = {
    "passed": {
        "en": "The Residential Tenancy Act of {place} was passed in {year} and last amended in {year2}.",
        "de": "Das Wohnraummietgesetz von {place} wurde {year} verabschiedet und zuletzt {year2} geändert.",
        "es": "La Ley de Arrendamientos Residenciales de {place} se aprobó en {year} y se modificó por última vez "
              "en {year2}."},
    "definition": {
        "en": "Section {sec} of the Act of {place} defines a rental unit as any room or dwelling let for residential "
              "use.",
        "de": "§ {sec} des Gesetzes von {place} definiert eine Mietwohnung als jeden zu Wohnzwecken vermieteten Raum.",
        "es": "El artículo {sec} de la ley de {place} define una vivienda de alquiler como cualquier habitación o "
              "vivienda arrendada para uso residencial."},
    "tribunal": {
        "en": "Disputes under the Act of {place} are heard by the Tenancy Tribunal, whose members serve {n}-year "
              "terms.",
        "de": "Streitigkeiten nach dem Gesetz von {place} entscheidet das Mietgericht, dessen Mitglieder für {n} "
              "Jahre ernannt werden.",
        "es": "Los conflictos según la ley de {place} los resuelve el Tribunal de Arrendamientos, cuyos miembros "
              "tienen mandatos de {n} años."},
    "exemptions": {
        "en": "The Act of {place} does not apply to hotels, student halls or holiday lets.",
        "de": "Das Gesetz von {place} gilt nicht für Hotels, Studentenwohnheime oder Ferienwohnungen.",
        "es": "La ley de {place} no se aplica a hoteles, residencias de estudiantes ni alquileres vacacionales."},
    "register": {
        "en": "Landlords in {place} must enter every rental unit in the public rental register (section {sec}).",
        "de": "Vermieter in {place} müssen jede Mietwohnung in das öffentliche Mietregister eintragen (§ {sec}).",
        "es": "Los arrendadores de {place} deben inscribir cada vivienda en el registro público de alquileres "
              "(artículo {sec})."},
}
NOTE_TITLES = {"passed": "history", "definition": "definitions", "tribunal": "tribunal", "exemptions": "scope",
               "register": "rental register"}


def slug(place: str) -> str:
    """``"Port Ardent"`` -> ``"port-ardent"``."""
    return place.lower().replace(" ", "-")


def fill(template: str, values: dict[str, object]) -> tuple[str, int]:
    """The filled template and the character offset of ``{n}`` in it (-1 when the template has none)."""
    marker = "\x00"
    text = template.format(**{**values, "n": marker})
    offset = text.find(marker)
    return text.replace(marker, str(values.get("n", ""))), offset


def build_facts(seed: int) -> tuple[list[dict], list[dict]]:
    """Rules and notes of every place: dicts with ``place``, ``kind``, ``topic``, ``values``, ``asked``."""
    rng = random.Random(seed)
    rules, notes = [], []
    for place in PLACES + EXTRA_PLACES + BEIR_ONLY_PLACES:
        topics = sorted(rng.sample(sorted(TOPICS), 13))
        sections = sorted(rng.sample(range(3, 80), len(topics) + 2))
        sec_of = dict(zip(topics, sections[2:]))
        for topic in topics:
            low, high, step = TOPICS[topic][0]
            values = {"place": place, "sec": sec_of[topic], "n": rng.randrange(low, high + 1, step)}
            rules.append({"place": place, "topic": topic, "values": values, "asked": place in PLACES,
                          "phrasing": rng.randrange(2), "group": f"{slug(place)}-{topic}"})
        year = rng.randrange(1961, 2011)
        note_values = {"place": place, "sec": sections[0], "year": year, "year2": year + rng.randrange(3, 13),
                       "n": rng.randrange(3, 8)}
        for key in sorted(rng.sample(sorted(NOTES), 3)):
            sec = sections[1] if key == "register" else sections[0]
            notes.append({"place": place, "topic": key, "values": {**note_values, "sec": sec},
                          "group": f"{slug(place)}-{key}"})
    return rules, notes


def lareqa_json(lang: str, rules: list[dict], notes: list[dict], seed: int) -> dict:
    """One language's LAReQA-style JSON: an article per place, paragraphs of 2-4 sentences (rules and notes)."""
    rng = random.Random(f"{seed}-paragraphs")  # the same paragraphing in every language
    data = []
    for place in PLACES + EXTRA_PLACES:
        items = [("rule", r) for r in rules if r["place"] == place]
        items += [("note", n) for n in notes if n["place"] == place]
        rng.shuffle(items)
        paragraphs = []
        while items:
            size = min(len(items), rng.choice((2, 3, 4)))
            chunk, items = items[:size], items[size:]
            sentences, breaks, qas, start = [], [], [], 0
            for kind, item in chunk:
                template = TOPICS[item["topic"]][2][lang][0] if kind == "rule" else NOTES[item["topic"]][lang]
                sentence, offset = fill(template, item["values"])
                if kind == "rule" and item["asked"]:
                    question = TOPICS[item["topic"]][2][lang][1][item["phrasing"]].format(**item["values"])
                    qas.append({"id": item["group"], "question": question,
                                "answers": [{"text": str(item["values"]["n"]), "answer_start": start + offset}]})
                sentences.append(sentence)
                breaks.append([start, start + len(sentence)])
                start += len(sentence) + 1
            context = " ".join(sentences)
            for qa in qas:  # the answer is where the offsets say
                answer = qa["answers"][0]
                assert context[answer["answer_start"]:].startswith(answer["text"]), qa
            paragraphs.append({"context": context, "sentences": sentences, "sentence_breaks": breaks, "qas": qas})
        data.append({"title": ACT[lang].format(place=place), "paragraphs": paragraphs})
    return {"version": "synthetic-legal-qa-1", "data": data}


def beir_frames(rules: list[dict], notes: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """English corpus, queries and train/test qrels (ids without language prefix: the folder is English)."""
    docs, queries, judged = [], [], []
    for rule in rules:
        values = rule["values"]
        text, _ = fill(TOPICS[rule["topic"]][2]["en"][0], values)
        docid = f"{slug(rule['place'])}-s{values['sec']:02d}"
        docs.append({"docno": docid, "title": f"{ACT['en'].format(place=rule['place'])}, section {values['sec']}",
                     "text": f"{text} {TOPICS[rule['topic']][1]}"})
        if rule["asked"]:
            question = TOPICS[rule["topic"]][2]["en"][1][rule["phrasing"]].format(**values)
            queries.append({"qid": rule["group"], "query": question})
            judged.append((rule["group"], docid))
    for note in notes:
        text, _ = fill(NOTES[note["topic"]]["en"], note["values"])
        docs.append({"docno": f"{slug(note['place'])}-{note['topic']}",
                     "title": f"{ACT['en'].format(place=note['place'])}: {NOTE_TITLES[note['topic']]}", "text": text})
    train, test = split_groups([q["qid"] for q in queries], test_fraction=TEST_FRACTION, seed=SPLIT_SEED)
    qrels = {split: pd.DataFrame([(q, d, 1) for q, d in judged if q in set(groups)], columns=["qid", "docno", "label"])
             for split, groups in (("train", train), ("test", test))}
    corpus = pd.DataFrame(docs).sort_values("docno", kind="stable").reset_index(drop=True)
    return corpus, pd.DataFrame(queries), qrels


def generate(out: Path, seed: int = 0) -> list[Path]:
    """Write ``legal_qa_beir/`` and ``legal_qa_lareqa/`` under ``out``; returns the files written."""
    rules, notes = build_facts(seed)
    corpus, queries, qrels = beir_frames(rules, notes)
    beir = write_beir_folder(out / "legal_qa_beir", corpus=corpus, queries=queries, qrels=qrels, overwrite=True)
    lareqa = out / "legal_qa_lareqa"
    lareqa.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        text = json.dumps(lareqa_json(lang, rules, notes, seed), ensure_ascii=False, separators=(",", ":"))
        (lareqa / f"{lang}.json").write_text(text + "\n", encoding="utf-8")
    return sorted(p for p in [*beir.rglob("*"), *lareqa.glob("*.json")] if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Generate (or ``--check``) the shipped files; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="compare a fresh build with the files in --out")
    args = p.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = generate(Path(tmp), args.seed)
            differ = [f.relative_to(tmp) for f in fresh
                      if not (args.out / f.relative_to(tmp)).is_file()
                      or not filecmp.cmp(f, args.out / f.relative_to(tmp), shallow=False)]
        if differ:
            print(f"out of date: {', '.join(map(str, differ))}; run {Path(__file__).name} to rewrite", file=sys.stderr)
            return 1
        print(f"{len(fresh)} files up to date")
        return 0
    files = generate(args.out, args.seed)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1024:.0f} KiB, under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
