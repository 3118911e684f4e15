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
