"""Common given names and surnames (English and Spanish) that confirm a model's PERSON guess.

A spaCy PERSON guess is kept when it holds one of these names, is three words or more, or
follows a phrase that introduces a name; a lone capitalised word that is none of these
("Levi's", "Roomba Combo", "Vivo") is more often a product or a verb than a person.
Lists written for Afina from common-knowledge name frequencies; extend with care.
"""

from __future__ import annotations

GIVEN = frozenset(
    """
    aaron adam adrian aidan alan albert alex alexander alice alicia amanda amber amy andrew
    angela anna anne anthony ashley austin barbara ben benjamin beth betty brandon brian
    brittany bruce caleb carl carol caroline catherine charles charlie charlotte chloe chris
    christina christine christopher claire daniel danielle david deborah dennis diana donald
    donna dorothy dylan edward eleanor elizabeth ellen emily emma eric ethan evelyn frank gary
    george grace gregory hannah harry heather helen henry isaac jack jacob james jane janet
    jason jeffrey jennifer jeremy jessica joan john jonathan joseph joshua judith julia julie
    justin karen katherine kathleen kayla keith kelly kenneth kevin kimberly kyle larry laura
    lauren linda lisa logan lucy madison margaret maria mark mary matthew megan melissa
    michael michelle nancy natalie nathan nicholas nicole noah oliver olivia patricia patrick
    paul peter rachel raymond rebecca richard robert ronald rose ruth ryan samantha samuel
    sandra sarah scott sean sharon sophia stephanie stephen steven susan thomas timothy tyler
    victoria walter william zachary
    abril adela adriana agustín agustina alba alberto alejandra alejandro alfonso alicia
    álvaro amparo ana andrea andrés ángel ángela antonia antonio ariadna beatriz benjamín
    blanca bruno camila carla carlos carmen carolina catalina césar clara concepción
    consuelo cristian cristina daniela david diego dolores eduardo elena emilia emilio
    enrique esperanza esteban eva federico felipe fernanda fernando francisca francisco
    gabriel gabriela gael gloria gonzalo guadalupe guillermo gustavo héctor hugo ignacio
    inés irene isabel ismael iván jaime javier jesús jimena joaquín jorge josé josefa
    juan juana julia julián julio laura leonardo leticia lidia lorena lorenzo lucas lucía
    luis luisa manuel manuela marcela marcos margarita maría mariana mario marisol marta
    martín martina mateo matías mercedes miguel milagros mónica natalia nicolás nora óscar
    pablo paloma patricia paula pedro pilar rafael ramón raquel raúl regina ricardo roberto
    rocío rodrigo rosa rosario rubén salvador samuel santiago sara sebastián sergio silvia
    sofía soledad susana teresa tomás valentina valeria vanesa verónica vicente víctor
    ximena yolanda
    """.split()
)

SURNAMES = frozenset(
    """
    smith johnson williams brown jones garcia miller davis wilson anderson taylor thomas
    moore jackson martin lee thompson white harris clark clarke lewis robinson walker young
    allen king wright scott hill green adams baker nelson carter mitchell roberts turner
    phillips campbell parker evans edwards collins stewart morris murphy cook rogers morgan
    cooper peterson reed bailey bell kelly howard ward cox richardson wood watson brooks
    bennett gray hughes price sanders patel hall
    garcía gonzález gonzalez rodríguez rodriguez fernández fernandez lópez lopez martínez
    martinez sánchez sanchez pérez perez gómez gomez martín jiménez jimenez ruiz hernández
    hernandez díaz diaz moreno muñoz álvarez alvarez romero alonso gutiérrez gutierrez
    navarro torres domínguez dominguez vázquez vazquez ramos gil ramírez ramirez serrano
    blanco molina morales suárez suarez ortega delgado castro ortiz rubio marín sanz núñez
    iglesias medina garrido cortés castillo santos lozano guerrero cano prieto méndez cruz
    flores herrera peña león márquez cabrera gallego calvo vidal campos vega fuentes carrasco
    diez reyes caballero nieto aguilar pascual santana herrero montero lorenzo hidalgo
    giménez ibáñez ferrer durán santiago benítez vargas mora vicente arias carmona crespo
    román pastor soto sáez saez velasco soler moya esteban parra bravo gallardo rojas
    """.split()
)


def is_known(word: str) -> bool:
    """Whether ``word`` is a common given name or surname (any case)."""
    key = word.strip(".,;:!?¡¿()\"'").casefold()
    return key in GIVEN or key in SURNAMES


# Brands, product lines and couriers a shop's customers write with capitals, which a NER model
# often takes for people ("Tommy Hilfiger", "Xiaomi Redmi Note 13", "Garmin Forerunner",
# "hablé con Correos"). A guessed name holding one of these words is not redacted unless a phrase
# introduces it ("me llamo ..."). Only words that are nobody's common given name or surname are
# listed alone; brands made of people's names are in BRAND_PHRASES.
BRAND_WORDS = frozenset(
    """
    apple iphone ipad ipod airpods macbook imac samsung galaxy xiaomi redmi poco huawei oppo
    realme oneplus motorola nokia xperia playstation xbox nintendo switch bose jbl sonos beats
    sennheiser garmin forerunner fitbit amazfit suunto kindle paperwhite alexa amazon google
    pixel chromecast microsoft lenovo thinkpad ideapad pavilion elitebook omen dell xps
    inspiron alienware asus zenbook vivobook acer aspire msi lg philips dyson roomba irobot
    cecotec conga rowenta tefal moulinex krups delonghi de'longhi nespresso thermomix braun
    oral-b gillette nike adidas puma reebok asics converse vans levi's levis zara dutti bershka
    stradivarius oysho uniqlo primark hilfiger lacoste ray-ban rayban oakley swatch casio
    tissot seiko gopro canon nikon fujifilm panasonic logitech razer corsair ikea decathlon
    quechua cosori ultraboost magnifica quietcomfort tp-link netgear
    correos seur mrw dhl ups fedex gls nacex tipsa estafeta glovo ebay aliexpress paypal bizum
    klarna visa mastercard nubo afina whatsapp instagram facebook tiktok youtube spotify netflix
    movistar vodafone yoigo jazztel telcel bbva santander caixabank bankinter sabadell unicaja
    banamex banorte bancolombia davivienda nequi mercadopago oxxo walmart carrefour mediamarkt
    """.split()
)
BRAND_PHRASES = (
    "ralph lauren", "calvin klein", "stan smith", "tommy jeans", "massimo dutti",
    "victoria's secret", "hugo boss", "michael kors", "emma original", "dolce gusto", "air max",
    "air jordan", "jordan 1", "oral b", "marc jacobs", "louis vuitton", "yves saint laurent",
    "carolina herrera", "adolfo dominguez", "adolfo domínguez", "el corte inglés",
    "el corte ingles", "mercado libre", "mercado pago",
)  # fmt: skip


def is_brand(word: str) -> bool:
    """Whether ``word`` is a brand, product line or courier name (any case)."""
    return word.strip(".,;:!?¡¿()\"'").casefold() in BRAND_WORDS


def brand_phrases(text: str) -> list[tuple[int, int]]:
    """Where ``text`` names a brand made of people's names ("Ralph Lauren", "Massimo Dutti")."""
    low = text.casefold()
    found = []
    for phrase in BRAND_PHRASES:
        at = low.find(phrase)
        while at >= 0:
            found.append((at, at + len(phrase)))
            at = low.find(phrase, at + 1)
    return found
