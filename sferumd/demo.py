"""Demo and generated schools, as roster changes in the webhook wire format.

Pure: no I/O, no clock, no unseeded randomness. Everything is built as ``roster.model``
dataclasses and turned into wire changes by ``changes.entity_to_wire``, so the output parses
with ``changes.parse_batch`` by construction.

- ``demo_school(version, week_of)``: "Школа № 7" with classes 7В and 8А, their homeroom
  teachers, students, parents, subject teachers, an English split of 7В into two groups, the
  academic year and a Mon–Fri timetable (Moscow time) for the week containing ``week_of``.
  Every person has a distinct phone ``+7999000XXXX`` so anyone can sign in as them; ``hints``
  names a few of them for "sign in as" lines.
- ``generated_school(n_users, n_classes, seed)``: a large synthetic school for benchmarks,
  with the same kinds of entities (no timetable), deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sferumd.services.roster.changes import entity_to_wire
from sferumd.services.roster.model import (
    AcademicYear,
    Enrollment,
    Entity,
    Guardianship,
    Lesson,
    Person,
    Role,
    School,
    SchoolClass,
    SubGroup,
    Subject,
    TeachingAssignment,
)

MOSCOW = timezone(timedelta(hours=3))
LESSON_MINUTES = 45
DEMO_PHONE_PREFIX = "+7999000"  # + 4 digits: a range no real subscriber is handed out in
GENERATED_PHONE_PREFIX = "+79991"  # + 6 digits
GENERATED_VERSION = 1_725_148_800_000  # 2024-09-01T00:00:00Z in ms
DEMO_SEED = 7  # the demo's names and families; fixed so every run shows the same school


@dataclass(frozen=True, slots=True)
class DemoPerson:
    """Someone to sign in as: the phone signs in, the account is already in the roster."""

    role: Role
    account_id: str  # Person.sourced_id
    full_name: str  # "Смирнова Елена Викторовна"
    phone: str
    class_name: str  # the class they are in, lead, teach, or their child is in
    about: str  # "классный руководитель 7В, учитель истории (7В, 8А)"


@dataclass(frozen=True, slots=True)
class DemoSchool:
    changes: list[dict[str, Any]]  # upserts in the webhook wire format, referenced first
    hints: list[DemoPerson]
    school_name: str
    week_start: date  # the Monday of the timetable


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# -- names ------------------------------------------------------------------------------------

# Surnames in the masculine form; the feminine one is derived (``_feminine``).
SURNAMES = _words(
    "Иванов Петров Смирнов Кузнецов Попов Васильев Соколов Михайлов Новиков Фёдоров "
    "Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев "
    "Орлов Андреев Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев "
    "Романов Воробьёв Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв "
    "Ильин Максимов Поляков Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов "
    "Жуков Баранов Филиппов Комаров Давыдов Беляев Герасимов Богданов Осипов Сидоров "
    "Матвеев Титов Марков Миронов Крылов Куликов Карпов Власов Мельников Денисов "
    "Гаврилов Тихонов Казаков Афанасьев Данилов Савельев Тимофеев Фомин Чернов Абрамов "
    "Мартынов Ефимов Федотов Щербаков Назаров Калинин Исаев Чернышёв Быков Маслов "
    "Родионов Коновалов Лазарев Воронин Климов Филатов Пономарёв Голубев Кудрявцев "
    "Прохоров Наумов Потапов Журавлёв Овчинников Трофимов Леонов Соболев Ермаков "
    "Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин Ефремов Архипов Громов "
    "Кириллов Малышев Панов Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов "
    "Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин Белоусов Нестеров "
    "Симонов Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронцов Блинов "
    "Островский Чайковский Жуковский Покровский Вишневский Яблонский Ковальский Полянский"
)

BOYS = _words(
    "Александр Максим Артём Михаил Даниил Иван Дмитрий Кирилл Андрей Егор Никита Илья "
    "Алексей Матвей Тимофей Роман Владислав Ярослав Арсений Марк Глеб Лев Фёдор Степан "
    "Тимур Константин Павел Денис Богдан Георгий Савелий Макар Всеволод Семён Захар Мирон"
)
GIRLS = _words(
    "Анастасия Мария Дарья Анна Елизавета Полина Виктория Екатерина Софья Александра "
    "Ксения Варвара Алиса Вероника Арина Валерия Ульяна Алёна Милана Кира Ева Маргарита "
    "Диана Юлия Таисия Василиса Злата Есения Ольга Майя Яна Ангелина Кристина Надежда"
)
WOMEN = _words(
    "Елена Ольга Наталья Татьяна Ирина Светлана Юлия Анна Екатерина Мария Марина "
    "Анастасия Евгения Оксана Людмила Надежда Галина Виктория Ксения Алёна Вера Любовь "
    "Жанна Инна Лариса Валентина Маргарита Дарья Кристина Яна Полина Алла Нина Лилия"
)

# A man's name -> the patronymics it gives his son and his daughter.
PATRONYMICS: dict[str, tuple[str, str]] = {
    "Александр": ("Александрович", "Александровна"),
    "Алексей": ("Алексеевич", "Алексеевна"),
    "Анатолий": ("Анатольевич", "Анатольевна"),
    "Андрей": ("Андреевич", "Андреевна"),
    "Антон": ("Антонович", "Антоновна"),
    "Артём": ("Артёмович", "Артёмовна"),
    "Борис": ("Борисович", "Борисовна"),
    "Вадим": ("Вадимович", "Вадимовна"),
    "Валерий": ("Валерьевич", "Валерьевна"),
    "Василий": ("Васильевич", "Васильевна"),
    "Виктор": ("Викторович", "Викторовна"),
    "Владимир": ("Владимирович", "Владимировна"),
    "Владислав": ("Владиславович", "Владиславовна"),
    "Вячеслав": ("Вячеславович", "Вячеславовна"),
    "Геннадий": ("Геннадьевич", "Геннадьевна"),
    "Георгий": ("Георгиевич", "Георгиевна"),
    "Григорий": ("Григорьевич", "Григорьевна"),
    "Денис": ("Денисович", "Денисовна"),
    "Дмитрий": ("Дмитриевич", "Дмитриевна"),
    "Евгений": ("Евгеньевич", "Евгеньевна"),
    "Иван": ("Иванович", "Ивановна"),
    "Игорь": ("Игоревич", "Игоревна"),
    "Илья": ("Ильич", "Ильинична"),
    "Кирилл": ("Кириллович", "Кирилловна"),
    "Константин": ("Константинович", "Константиновна"),
    "Леонид": ("Леонидович", "Леонидовна"),
    "Максим": ("Максимович", "Максимовна"),
    "Михаил": ("Михайлович", "Михайловна"),
    "Николай": ("Николаевич", "Николаевна"),
    "Олег": ("Олегович", "Олеговна"),
    "Павел": ("Павлович", "Павловна"),
    "Пётр": ("Петрович", "Петровна"),
    "Роман": ("Романович", "Романовна"),
    "Руслан": ("Русланович", "Руслановна"),
    "Сергей": ("Сергеевич", "Сергеевна"),
    "Станислав": ("Станиславович", "Станиславовна"),
    "Юрий": ("Юрьевич", "Юрьевна"),
    "Ярослав": ("Ярославович", "Ярославовна"),
}
MEN = tuple(PATRONYMICS)


def _feminine(surname: str) -> str:
    """Смирнов -> Смирнова, Чайковский -> Чайковская."""
    return surname[:-2] + "ая" if surname.endswith("ий") else surname + "а"


def full_name(person: Person) -> str:
    """Фамилия Имя Отчество: the order a journal lists people in."""
    parts = (person.last_name, person.first_name, person.patronymic)
    return " ".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class _Name:
    first: str
    last: str
    patronymic: str


@dataclass(frozen=True, slots=True)
class _Family:
    """Names that agree: the children's surname and patronymic come from the father's, the
    mother's surname is its feminine form. One or two parents are in the journal."""

    surname: str  # masculine form
    father: str  # the father's first name, whether or not he is listed
    parents: tuple[_Name, ...]

    def child(self, first: str, female: bool) -> _Name:
        son, daughter = PATRONYMICS[self.father]
        if female:
            return _Name(first, _feminine(self.surname), daughter)
        return _Name(first, self.surname, son)


def _family(rng: random.Random, surname: str) -> _Family:
    father = rng.choice(MEN)
    mother = _Name(rng.choice(WOMEN), _feminine(surname), PATRONYMICS[rng.choice(MEN)][1])
    dad = _Name(father, surname, PATRONYMICS[rng.choice(MEN)][0])
    roll = rng.random()  # most children have both parents listed, some one of them
    parents = (mother, dad) if roll < 0.6 else (mother,) if roll < 0.9 else (dad,)
    return _Family(surname, father, parents)


def _child(rng: random.Random, family: _Family) -> _Name:
    female = rng.random() < 0.5
    return family.child(rng.choice(GIRLS if female else BOYS), female)


# -- the demo school --------------------------------------------------------------------------

SCHOOL_ID = "SCH-7"
SCHOOL_NAME = "Школа № 7"

# Subject code -> name; the subject's id is ``SUB-<code>``.
SUBJECTS: dict[str, str] = {
    "MATH": "Математика",
    "RUS": "Русский язык",
    "LIT": "Литература",
    "ENG": "Английский язык",
    "HIST": "История",
    "PHYS": "Физика",
    "BIO": "Биология",
    "GEO": "География",
    "INF": "Информатика",
    "PE": "Физическая культура",
}
# The same in the genitive, for "учитель истории".
SUBJECTS_GENITIVE: dict[str, str] = {
    "MATH": "математики",
    "RUS": "русского языка",
    "LIT": "литературы",
    "ENG": "английского языка",
    "HIST": "истории",
    "PHYS": "физики",
    "BIO": "биологии",
    "GEO": "географии",
    "INF": "информатики",
    "PE": "физкультуры",
}


@dataclass(frozen=True, slots=True)
class _Teacher:
    sid: str
    first: str
    last: str
    patronymic: str


TEACHERS: tuple[_Teacher, ...] = (
    _Teacher("T-01", "Елена", "Смирнова", "Викторовна"),
    _Teacher("T-02", "Андрей", "Кузнецов", "Павлович"),
    _Teacher("T-03", "Ольга", "Волкова", "Николаевна"),
    _Teacher("T-04", "Ирина", "Морозова", "Сергеевна"),
    _Teacher("T-05", "Дмитрий", "Лебедев", "Александрович"),
    _Teacher("T-06", "Игорь", "Соколов", "Владимирович"),
    _Teacher("T-07", "Наталья", "Павлова", "Геннадьевна"),
    _Teacher("T-08", "Сергей", "Фёдоров", "Иванович"),
)

# Who teaches what, the same in both classes, except English in a split class: its groups
# have a teacher each.
TEACHER_OF: dict[str, str] = {
    "MATH": "T-02",
    "RUS": "T-03",
    "LIT": "T-03",
    "ENG": "T-04",
    "HIST": "T-01",
    "PHYS": "T-06",
    "BIO": "T-07",
    "GEO": "T-07",
    "INF": "T-05",
    "PE": "T-08",
}
ENGLISH_GROUP_TEACHERS = ("T-04", "T-05")  # group 1, group 2


@dataclass(frozen=True, slots=True)
class _DemoClass:
    sid: str
    code: str  # for the ids of its students, lessons and groups
    name: str
    homeroom: str  # a teacher id
    students: int
    english_split: bool
    timetable: tuple[tuple[str, ...], ...]  # Mon..Fri: the day's lessons, as subject codes


# 28 lessons a week per class, 5–6 a day, and no teacher in two rooms at once (a test checks
# it); 7В's two English groups have their lessons in the same period.
CLASSES: tuple[_DemoClass, ...] = (
    _DemoClass(
        "CL-7V", "7V", "7В", homeroom="T-01", students=24, english_split=True,
        timetable=(
            ("RUS", "MATH", "HIST", "ENG", "PHYS", "PE"),
            ("MATH", "RUS", "BIO", "LIT", "GEO", "INF"),
            ("ENG", "MATH", "RUS", "PE", "LIT"),
            ("MATH", "PHYS", "RUS", "HIST", "ENG", "GEO"),
            ("LIT", "MATH", "BIO", "PE", "INF"),
        ),
    ),
    _DemoClass(
        "CL-8A", "8A", "8А", homeroom="T-02", students=25, english_split=False,
        timetable=(
            ("MATH", "RUS", "PE", "HIST", "BIO", "ENG"),
            ("RUS", "MATH", "PHYS", "INF", "LIT", "GEO"),
            ("MATH", "ENG", "PE", "RUS", "HIST"),
            ("LIT", "MATH", "BIO", "PHYS", "RUS", "INF"),
            ("MATH", "GEO", "ENG", "LIT", "PE"),
        ),
    ),
)  # fmt: skip

# Period -> start (hour, minute), Moscow time; every lesson is LESSON_MINUTES long.
BELLS: tuple[tuple[int, int], ...] = ((8, 30), (9, 25), (10, 30), (11, 35), (12, 30), (13, 25))


def week_monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def academic_year_of(day: date) -> tuple[int, int]:
    """A Russian school year runs from 1 September to 31 August: (its first, second year)."""
    first = day.year if day.month >= 9 else day.year - 1
    return first, first + 1


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), MOSCOW)


class _Phones:
    """Distinct demo phones, handed out in order."""

    def __init__(self) -> None:
        self.issued = 0

    def next(self) -> str:
        self.issued += 1
        if self.issued > 9999:
            raise ValueError("the demo phone range +7999000XXXX is used up")
        return f"{DEMO_PHONE_PREFIX}{self.issued:04d}"


def _draw_pupils(rng: random.Random) -> dict[str, list[tuple[_Name, _Family]]]:
    """Each class's students with their families; 7В's first family has a son in 8А too,
    so one family is in both parents' chats. Names (surname + first name) are distinct."""
    surnames = list(SURNAMES)
    rng.shuffle(surnames)
    seen: set[tuple[str, str]] = set()
    pupils: dict[str, list[tuple[_Name, _Family]]] = {}
    for klass in CLASSES:
        pupils[klass.sid] = []
        for _ in range(klass.students):
            family = _family(rng, surnames.pop())
            name = _child(rng, family)
            while (name.last, name.first) in seen:
                name = _child(rng, family)
            seen.add((name.last, name.first))
            pupils[klass.sid].append((name, family))
    shared = pupils[CLASSES[0].sid][0][1]
    brother = shared.child(rng.choice([b for b in BOYS if (shared.surname, b) not in seen]), False)
    pupils[CLASSES[1].sid][-1] = (brother, shared)
    for listed in pupils.values():
        listed.sort(key=lambda pupil: (pupil[0].last, pupil[0].first))  # the journal's order
    return pupils


@dataclass
class _Builder:
    version: int
    phones: _Phones
    people: list[Person]

    def person(self, sid: str, role: Role, first: str, last: str, patronymic: str) -> Person:
        p = Person(sid, self.version, SCHOOL_ID, role, first, last, patronymic, self.phones.next())
        self.people.append(p)
        return p


def demo_school(version: int, week_of: date) -> DemoSchool:
    """The demo school as upserts at ``version``, with the timetable of the Mon–Fri of the
    week containing ``week_of`` (the caller passes today's date for "this week")."""
    rng = random.Random(DEMO_SEED)
    monday = week_monday(week_of)
    first, second = academic_year_of(monday)
    year = AcademicYear(
        f"AY-{first}", version, SCHOOL_ID, f"{first}/{second}", f"{first}-09-01", f"{second}-08-31"
    )
    b = _Builder(version, _Phones(), [])
    for t in TEACHERS:
        b.person(t.sid, "teacher", t.first, t.last, t.patronymic)

    pupils = _draw_pupils(rng)
    classes: list[Entity] = []
    enrollments: list[Entity] = []
    guardianships: list[Entity] = []
    groups: list[Entity] = []
    parents_of_family: dict[_Family, list[Person]] = {}  # family -> its parents' accounts
    students: dict[str, list[Person]] = {}
    parents: dict[str, list[Person]] = {}  # student id -> guardians
    for klass in CLASSES:
        classes.append(
            SchoolClass(klass.sid, version, SCHOOL_ID, klass.name, klass.homeroom, year.sourced_id)
        )
        students[klass.sid] = []
        for n, (name, family) in enumerate(pupils[klass.sid], start=1):
            sid = f"ST-{klass.code}-{n:02d}"
            student = b.person(sid, "student", name.first, name.last, name.patronymic)
            students[klass.sid].append(student)
            enrollments.append(Enrollment(f"EN-{sid}", version, sid, klass.sid))
            guardians = parents_of_family.get(family)
            if guardians is None:
                guardians = [
                    b.person(f"PA-{klass.code}-{n:02d}-{i}", "parent", *_parts(p))
                    for i, p in enumerate(family.parents, start=1)
                ]
                parents_of_family[family] = guardians
            parents[sid] = guardians
            guardianships.extend(
                Guardianship(f"GU-{p.sourced_id}-{sid}", version, p.sourced_id, sid)
                for p in guardians
            )
        if klass.english_split:
            ids = [s.sourced_id for s in students[klass.sid]]
            half = (len(ids) + 1) // 2
            for g, part in enumerate((ids[:half], ids[half:]), start=1):
                title = f"{SUBJECTS['ENG']}, {g} группа"
                groups.append(SubGroup(_group_id(klass, g), version, klass.sid, title, tuple(part)))

    entities: list[Entity] = [
        School(SCHOOL_ID, version, SCHOOL_NAME),
        year,
        *(Subject(f"SUB-{code}", version, SCHOOL_ID, name) for code, name in SUBJECTS.items()),
        *b.people,
        *classes,
        *enrollments,
        *guardianships,
        *groups,
        *_teaching(version),
        *_lessons(version, monday),
    ]
    people = {p.sourced_id: p for p in b.people}
    hints = _hints(people, students, parents)
    return DemoSchool([entity_to_wire(e) for e in entities], hints, SCHOOL_NAME, monday)


def _parts(name: _Name) -> tuple[str, str, str]:
    return name.first, name.last, name.patronymic


def _group_id(klass: _DemoClass, group: int) -> str:
    return f"GR-{klass.code}-ENG-{group}"


def _teachers_in(klass: _DemoClass, subject: str) -> list[tuple[str, str | None]]:
    """(teacher, group) for each part of the class that has ``subject`` separately."""
    if subject == "ENG" and klass.english_split:
        return [(t, _group_id(klass, g)) for g, t in enumerate(ENGLISH_GROUP_TEACHERS, start=1)]
    return [(TEACHER_OF[subject], None)]


def _teaching(version: int) -> list[Entity]:
    out: list[Entity] = []
    for klass in CLASSES:
        for subject in SUBJECTS:
            for teacher, group in _teachers_in(klass, subject):
                sid = f"TA-{klass.code}-{subject}" + (f"-{group[-1]}" if group else "")
                out.append(
                    TeachingAssignment(sid, version, teacher, klass.sid, f"SUB-{subject}", group)
                )
    return out


def _lessons(version: int, monday: date) -> list[Entity]:
    out: list[Entity] = []
    for klass in CLASSES:
        for weekday, day_plan in enumerate(klass.timetable):
            day = monday + timedelta(days=weekday)
            for period, subject in enumerate(day_plan):
                start = _at(day, *BELLS[period])
                end = start + timedelta(minutes=LESSON_MINUTES)
                for teacher, group in _teachers_in(klass, subject):
                    sid = f"LS-{klass.code}-{day:%Y%m%d}-{period + 1}"
                    sid += f"-{group[-1]}" if group else ""
                    out.append(
                        Lesson(
                            sid,
                            version,
                            klass.sid,
                            f"SUB-{subject}",
                            teacher,
                            start.isoformat(),
                            end.isoformat(),
                            group,
                        )
                    )
    return out


def _what_they_teach(teacher: str) -> str:
    """ "истории (7В, 8А)", "английского языка (7В, 2 группа) и информатики (7В, 8А)"."""
    where: dict[str, list[str]] = {}
    for klass in CLASSES:
        for subject in SUBJECTS:
            for t, group in _teachers_in(klass, subject):
                if t == teacher:
                    label = f"{klass.name}, {group[-1]} группа" if group else klass.name
                    where.setdefault(subject, []).append(label)
    return " и ".join(f"{SUBJECTS_GENITIVE[s]} ({', '.join(w)})" for s, w in where.items())


def _is_girl(p: Person) -> bool:
    return (p.patronymic or "").endswith("на")  # -овна, -евна, Ильинична; sons: -ич


def _hints(
    people: dict[str, Person],
    students: dict[str, list[Person]],
    parents: dict[str, list[Person]],
) -> list[DemoPerson]:
    first_class, second_class = CLASSES
    subject_teacher = "T-05"  # teaches an English group in 7В and computing in both

    def hint(sid: str, class_name: str, about: str) -> DemoPerson:
        p = people[sid]
        assert p.phone is not None
        return DemoPerson(p.role, sid, full_name(p), p.phone, class_name, about)

    # A student with both parents listed, so the hinted parent has a partner in the chat too.
    student = next(s for s in students[first_class.sid] if len(parents[s.sourced_id]) == 2)
    parent = parents[student.sourced_id][0]
    girl = _is_girl(student)
    child = "дочь" if girl else "сын"
    # A classmate, so two pupils can try the class's chats and lessons together.
    classmate = next(s for s in students[first_class.sid] if s is not student)
    classmate_girl = _is_girl(classmate)
    return [
        hint(
            first_class.homeroom,
            first_class.name,
            f"классный руководитель {first_class.name}, учитель "
            + _what_they_teach(first_class.homeroom),
        ),
        hint(
            second_class.homeroom,
            second_class.name,
            f"классный руководитель {second_class.name}, учитель "
            + _what_they_teach(second_class.homeroom),
        ),
        hint(
            subject_teacher,
            first_class.name,
            "учитель " + _what_they_teach(subject_teacher),
        ),
        hint(
            student.sourced_id,
            first_class.name,
            f"{'ученица' if girl else 'ученик'} {first_class.name}",
        ),
        hint(
            classmate.sourced_id,
            first_class.name,
            f"{'ученица' if classmate_girl else 'ученик'} {first_class.name}",
        ),
        hint(
            parent.sourced_id,
            first_class.name,
            f"родитель: {child} {student.first_name} {student.last_name}, {first_class.name}",
        ),
    ]


# -- the generated school ---------------------------------------------------------------------

GENERATED_SUBJECTS = (
    "Русский язык",
    "Литература",
    "Математика",
    "Английский язык",
    "История",
    "Обществознание",
    "География",
    "Биология",
    "Физика",
    "Химия",
    "Информатика",
    "Физическая культура",
    "Музыка",
    "Изобразительное искусство",
    "Технология",
    "ОБЖ",
)
SUBJECTS_PER_CLASS = 8
CLASS_LETTERS = "АБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЭЮЯ"
STUDENT_SHARE = 0.55
PARENT_SHARE = 0.40
SECOND_PARENT = 0.3  # the share of students with a second guardian


def class_names(n_classes: int) -> list[str]:
    """1А..11А, 1Б..11Б, ...; past 11 × 27 classes a number is appended ("5А2")."""
    names = []
    for c in range(n_classes):
        grade, parallel = 1 + c % 11, c // 11
        letter = CLASS_LETTERS[parallel % len(CLASS_LETTERS)]
        lap = parallel // len(CLASS_LETTERS)
        names.append(f"{grade}{letter}" + (str(lap + 1) if lap else ""))
    return names


def generated_school(
    n_users: int = 5000, n_classes: int = 80, seed: int = 1, version: int = GENERATED_VERSION
) -> list[dict[str, Any]]:
    """A synthetic school of about ``n_users`` accounts (55 % students, 40 % parents, the rest
    teachers) in ``n_classes`` classes, as upserts at ``version``; the same for the same
    arguments. Every class has a homeroom teacher (a teacher leads at most one class while
    there are enough of them) and ``SUBJECTS_PER_CLASS`` subjects, one of them taught by its
    homeroom teacher; every parent has at least one child."""
    if n_classes < 1 or n_users < 3:
        raise ValueError("a generated school needs n_classes >= 1 and n_users >= 3")
    if n_users > 1_000_000:
        raise ValueError("generated phones cover at most 1 000 000 users")
    rng = random.Random(seed)
    n_teachers = max(1, round(n_users * (1 - STUDENT_SHARE - PARENT_SHARE)))
    n_parents = max(1, round(n_users * PARENT_SHARE))
    n_students = n_users - n_teachers - n_parents  # >= 1 as n_users >= 3
    school = School("SCH-1", version, "Школа № 1")
    year = AcademicYear(
        "AY-2024", version, school.sourced_id, "2024/2025", "2024-09-01", "2025-08-31"
    )
    subjects = [
        Subject(f"SUB-{i + 1:02d}", version, school.sourced_id, name)
        for i, name in enumerate(GENERATED_SUBJECTS)
    ]
    n_subjects = len(subjects)
    phones = (f"{GENERATED_PHONE_PREFIX}{i:06d}" for i in range(n_users + 1))

    def person(sid: str, role: Role, female: bool) -> Person:
        surname = rng.choice(SURNAMES)
        last = _feminine(surname) if female else surname
        first = (
            rng.choice(WOMEN if female else MEN)
            if role != "student"
            else rng.choice(GIRLS if female else BOYS)
        )
        patronymic = PATRONYMICS[rng.choice(MEN)][1 if female else 0]
        return Person(sid, version, school.sourced_id, role, first, last, patronymic, next(phones))

    teachers = [person(f"T-{i + 1:05d}", "teacher", rng.random() < 0.8) for i in range(n_teachers)]
    students = [person(f"ST-{i + 1:05d}", "student", rng.random() < 0.5) for i in range(n_students)]
    parents = [person(f"PA-{i + 1:05d}", "parent", rng.random() < 0.7) for i in range(n_parents)]

    # Teacher i teaches subject i mod n; a class's homeroom teacher is teacher c mod n.
    specialists: list[list[int]] = [[] for _ in subjects]
    for i in range(n_teachers):
        specialists[i % n_subjects].append(i)
    names = class_names(n_classes)
    classes: list[Entity] = []
    teaching: list[Entity] = []
    for c, name in enumerate(names):
        homeroom = c % n_teachers
        sid = f"CL-{c + 1:03d}"
        classes.append(
            SchoolClass(
                sid,
                version,
                school.sourced_id,
                name,
                teachers[homeroom].sourced_id,
                year.sourced_id,
            )
        )
        own = homeroom % n_subjects
        others = rng.sample([s for s in range(n_subjects) if s != own], SUBJECTS_PER_CLASS - 1)
        for s in sorted([own, *others]):
            pool = specialists[s]
            t = (
                homeroom
                if s == own
                else pool[rng.randrange(len(pool))]
                if pool
                else rng.randrange(n_teachers)
            )
            teaching.append(
                TeachingAssignment(
                    f"TA-{c + 1:03d}-{s + 1:02d}",
                    version,
                    teachers[t].sourced_id,
                    sid,
                    subjects[s].sourced_id,
                )
            )

    # Students fill the classes in order, in contiguous runs (a class's list is contiguous).
    enrollments: list[Entity] = [
        Enrollment(
            f"EN-{i + 1:05d}", version, s.sourced_id, f"CL-{i * n_classes // n_students + 1:03d}"
        )
        for i, s in enumerate(students)
    ]
    # Every parent gets a child; children left without one get a random parent, and some a
    # second one (a parent with several children is common).
    pairs: dict[tuple[int, int], None] = {}
    for p in range(n_parents):
        pairs[(p, p % n_students)] = None
    for st in range(n_parents, n_students):
        pairs[(rng.randrange(n_parents), st)] = None
    for st in range(n_students):
        if rng.random() < SECOND_PARENT:
            pairs[(rng.randrange(n_parents), st)] = None
    guardianships: list[Entity] = [
        Guardianship(f"GU-{g + 1:05d}", version, parents[p].sourced_id, students[st].sourced_id)
        for g, (p, st) in enumerate(pairs)
    ]
    entities: list[Entity] = [
        school,
        year,
        *subjects,
        *teachers,
        *students,
        *parents,
        *classes,
        *enrollments,
        *guardianships,
        *teaching,
    ]
    return [entity_to_wire(e) for e in entities]
