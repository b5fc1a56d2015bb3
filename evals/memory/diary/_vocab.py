"""Names and phrases of one user's life, as their personal assistant remembers it.

Names come from many cultures and none is shared with the Kestrel Labs or Brackenford
vocabularies (a test checks it). Some entities are written lower-case everywhere, as people
write them: pets ("biscuit"), apps and brands ("streamly"). Every list is ordered: the output
must not depend on hash order.
"""

from __future__ import annotations

__all__ = [
    "AIRLINES",
    "AREAS",
    "BRANDS",
    "BREEDS",
    "CARS",
    "CITIES",
    "CLASSES",
    "CLUBS",
    "COMPANIES",
    "DIETS",
    "DISHES",
    "FILMS",
    "FIRST_NAMES",
    "FOODS",
    "GIFTS",
    "HOTELS",
    "ITEMS",
    "JOBS",
    "LAST_NAMES",
    "MONTHS",
    "PETS",
    "PRACTICES",
    "PRICES",
    "ROLES",
    "SHOPS",
    "STREETS",
    "VENUES",
    "VISITS",
    "WEEKDAYS",
    "WIFI_PREFIXES",
]

FIRST_NAMES = [
    "Ngozi", "Tiago", "Farida", "Kenji", "Lucía", "Oluwaseun", "Thandiwe", "Mateus", "Siobhán", "Anh",
    "Bilal", "Chidi", "Daniela", "Eszter", "Folake", "Gökhan", "Haruka", "Ifeoma", "Javier", "Kalani",
    "Lakshmi", "Mahmoud", "Nilufar", "Obinna", "Paloma", "Qiu", "Rania", "Sanjay", "Tavita", "Uchenna",
    "Valeria", "Wanjiru", "Yusra", "Zoltan", "Akosua", "Bogdan", "Camila", "Dawit", "Emilia", "Fernando",
    "Giorgi", "Ishaan", "Jiho", "Kateryna", "Malak", "Nkechi", "Oksana", "Pedro", "Rashid", "Sakura",
    "Taiwo", "Ulla", "Vikram", "Wairimu", "Yohannes", "Zanele", "Adaeze", "Catalina", "Darius", "Efua",
    "Farhan", "Gulnara", "Hamza", "Inês", "Jovana", "Kaveh", "Leilani", "Milos", "Nasrin", "Osagie",
    "Parisa", "Radek", "Shirin", "Umar", "Vilja", "Xochitl", "Zofia", "Aroha", "Bongani", "Chiamaka",
    "Dilnoza", "Emre", "Fumiko", "Gustavo", "Hoang", "Ilse", "Jomo", "Kirra", "Lorenzo", "Minh",
    "Nawal", "Olamide", "Rangi", "Sione", "Tevita", "Ugne", "Vusi", "Wiremu", "Yerlan", "Zhanna",
    "Aditi", "Bakhyt", "Consuelo", "Dorota", "Eero", "Fotini", "Henrik", "Ioana", "Jurgis", "Kyung",
    "Lwazi", "Mirela", "Nikolaos", "Orla", "Pilar", "Rustam", "Sefa", "Tariq", "Uzma", "Vesela",
]

LAST_NAMES = [
    "Eze", "Ferreira", "Nakamura", "Balogun", "Mokoena", "Nguyen", "Chaudhry", "Okonkwo", "Kovács", "Adeyemi",
    "Yilmaz", "Morales", "Tran", "Bhattacharya", "Mahlangu", "Popescu", "Kaminski", "Haidari", "Ruiz", "Wanjiku",
    "Kimura", "Papadopoulos", "Mwangi", "Nasser", "Szabo", "Oliveira", "Castillo", "Sørensen", "Abebe", "Hashemi",
    "Jovanović", "Kang", "Lozano", "Nyambura", "Ortiz", "Quispe", "Rahman", "Suzuki", "Takahashi", "Ulloa",
    "Varga", "Wiśniewski", "Yamamoto", "Zapata", "Adjei", "Barzani", "Cardoso", "Dlamini", "Estrada", "Fofana",
    "Gonçalves", "Hosseini", "Ivanova", "Kiplagat", "Mendoza", "Ndlovu", "Obi", "Pereira", "Qureshi", "Rossi",
    "Sithole", "Tshabalala", "Uddin", "Vasquez", "Amini", "Bose", "Chen", "Díaz", "Ekwueme", "Fonseca",
    "Gupta", "Horvat", "Ilunga", "Jensen", "Kaur", "Moyo", "Ochieng", "Pham", "Reyes", "Salonen",
    "Tupou", "Uysal", "Virtanen", "Wang", "Yoon", "Zhang", "Asare", "Bui", "Dogan", "Ekström",
    "Fujita", "Gomes", "Halvorsen", "Inoue", "Jafari", "Kowalczyk", "Nakashima", "Ong", "Petrović", "Rosales",
    "Sandoval", "Tembo", "Ueda", "Vu", "Wójcik", "Yadav", "Zamora", "Akhtar", "Bianchi", "Danso",
    "Faleolo", "Hakimi", "Ito", "Juárez", "Kamau", "Lopes", "Njoroge", "Okeke", "Pillay", "Sasaki",
]

#: The user's relatives and the people around them; each role is one person.
ROLES = [
    "sister", "brother", "mum", "dad", "gran", "grandad", "aunt", "uncle", "cousin", "niece", "nephew",
    "godmother", "best friend", "flatmate", "boss", "landlord", "neighbour", "stepdad",
]

#: Where the people in the user's life live and where their employers are based.
CITIES = [
    "Valparaíso", "Nairobi", "Osaka", "Leeds", "Bristol", "Hobart", "Halifax", "Lyon", "Accra", "Tbilisi",
    "Montreal", "Cork", "Utrecht", "Seville", "Da Nang", "Cusco", "Glasgow", "Aarhus", "Lagos", "Busan",
    "Durban", "Wellington", "Marrakesh", "Oaxaca", "Ljubljana", "Tampere", "Izmir", "Kochi", "Cluj", "Antwerp",
    "Leipzig", "Galway", "Kyoto", "Adelaide", "Quito", "Gdańsk",
]

COMPANIES = [
    "Brightwater Analytics", "Tamarind Health", "Halvard Freight", "Corvid Games", "Lumen & Birch Architects",
    "Saltbox Bakeries", "Pellucid Optics", "Greenhollow Foods", "Riverstone Insurance", "Ambergate Studios",
    "Mariner Bank", "Hazelmere Primary School", "Kettle & Crane Design", "Bluefin Logistics", "Tessera Labs",
    "Marlpit Brewery", "Cloudberry Software", "Wexcombe General Hospital", "Palisade Legal", "Ironleaf Consulting",
    "Sundial Media", "Pebble & Oak Furniture", "Velo Verde Cycles", "Ardent Robotics", "Copperline Telecom",
    "Mossgiel Theatre", "Starling Pharmacy", "Orrery Books", "Kelpfield Energy", "Nightjar Records",
]

#: Neighbourhoods of the user's own town (never named: it is just "town").
AREAS = [
    "Wrenfield", "Calder Heights", "Poplar Dene", "Linwood", "Birchmount", "Ferncliffe", "Kittiwake Quay",
    "Marston Vale", "Redcastle", "Ashgrove", "Elmcroft", "Sunnyhill", "Dovecliff", "Brackwater",
]

#: Where clubs meet.
VENUES = [
    "the Old Tram Shed", "St Brigid's hall", "the Velvet Fox", "Ironbark climbing wall", "the Boathouse café",
    "Larchwood community centre", "the Printworks", "Gull Street studios", "the Lido", "the Anchor & Hope",
    "Paddlers' Wharf", "the Glasshouse", "Tinsmith's Yard", "the Observatory bar",
]

#: Hobby groups the user belongs to; each meets at one venue and has one organiser.
CLUBS = [
    "the Harbourside Harriers", "Mudlarks Pottery Club", "Night Owls Board Games", "Second Chapter Book Club",
    "the Samba Collective", "the Tuesday Ukulele Band", "Salsa Fridays", "the Crag Rats", "Fen Cyclists",
    "the Lino Print Circle", "the Chess Knights", "Canvas & Wine Nights", "the Lindy Hoppers", "the Sourdough Swap",
]

#: (practice, kind, what the user calls the clinician). Pets are registered at the "vet" ones.
PRACTICES: list[tuple[str, str, str]] = [
    ("Beaumont Dental", "dentist", "dentist"),
    ("Pell Street Smile Studio", "dentist", "dentist"),
    ("Orchard Street Surgery", "gp", "GP"),
    ("Riverside Medical Centre", "gp", "GP"),
    ("Kinetic Physio", "physio", "physio"),
    ("ClearSight Opticians", "optician", "optician"),
    ("Paws & Whiskers", "vet", "vet"),
    ("Foxley Lane Animal Hospital", "vet", "vet"),
    ("Fernside Veterinary Clinic", "vet", "vet"),
    ("the Moorhen Vet Practice", "vet", "vet"),
    ("Bluebird Dermatology", "dermatologist", "skin doctor"),
    ("Tidemark Counselling", "therapist", "therapist"),
]

#: Pet name -> species. Lower-case names are written lower-case everywhere, as their owners do.
PETS = {
    "biscuit": "dog", "mochi": "cat", "Pepper": "dog", "noodle": "rabbit", "Captain Fluff": "cat", "Bao": "hamster",
    "Kiwi": "parrot", "Sir Reginald": "tortoise", "Ziggy": "dog", "Nala": "cat", "Churro": "dog", "Pixel": "budgie",
    "Gizmo": "guinea pig", "waffles": "dog", "Juno": "cat", "Ozzy": "dog", "Miso": "cat", "Tinker": "rabbit",
    "Ferdinand": "dog", "Suki": "cat", "Dobby": "dog", "dumpling": "cat",
}
BREEDS = {
    "dog": ["beagle", "collie", "dachshund", "whippet", "labrador", "staffie", "spaniel"],
    "cat": ["tabby", "ragdoll", "Maine Coon", "black moggy", "Siamese"],
    "rabbit": ["lop", "Dutch rabbit"], "hamster": ["Syrian hamster"], "parrot": ["African grey"],
    "tortoise": ["Hermann's tortoise"], "budgie": ["blue budgie"], "guinea pig": ["long-haired guinea pig"],
}

#: Streets of the user's town (addresses that change in fact histories).
STREETS = [
    "Calloway Street", "Pell Street", "Magnolia Terrace", "Foundry Lane", "Sable Road", "Tern Close", "Ivory Mews",
    "Rookery Way", "Harbour View", "Cedar Walk", "Lindley Road", "Ostler's Yard", "Beck Street", "Penrose Avenue",
    "Dulcie Gardens", "Greaves Crescent",
]

CARS = [
    "a red Fiat Panda", "a grey Skoda Octavia", "an old Volvo estate", "a Nissan Leaf", "a blue Mini",
    "a Toyota Yaris hybrid", "a camper van", "a white Kia Niro", "a battered Honda Jazz", "a Tesla Model 3",
]
JOBS = [
    "a paramedic", "a sous-chef", "a primary teacher", "a UX designer", "a solicitor", "a data analyst",
    "a midwife", "an electrician", "a translator", "a structural engineer", "a barista", "a florist",
]
DIETS = ["vegetarian", "vegan", "pescatarian", "gluten-free", "dairy-free", "low-carb"]
#: Monthly prices, increasing (subscriptions only ever go up).
PRICES = ["£4.99", "£5.99", "£6.99", "£7.99", "£8.99", "£9.99", "£10.99", "£11.99", "£12.99", "£14.99"]

#: Apps, services and shops with a subscription; many are lower-case brands.
BRANDS = [
    "streamly", "Fernbox", "loopcycle", "PageTurner+", "Melodia", "fitloop", "Crumb Club", "cloudnest",
    "Morning Current", "quizzly", "Petpal cover", "Spoolbox", "kinderkit", "Vantage VPN", "snackdrop",
    "Linguaroo", "Tapestry TV", "boxfit",
]
#: Household visits and deliveries (their day changes in fact histories).
VISITS = [
    "the window cleaner", "the cleaner", "the veg box delivery", "the dog walker", "the gardener",
    "the milk delivery", "the laundry pick-up", "the bin collection",
]
#: The user's own weekly classes (their time changes in fact histories).
CLASSES = [
    "the yoga class", "the Spanish lesson", "the swimming lesson", "the pilates class", "the life drawing class",
    "the guitar lesson", "the first-aid course", "the kickboxing class",
]

SHOPS = [
    "Hartley's Hardware", "bloom & stem", "Kitchen Republic", "Tidy Tech", "the Sunday market", "Marlow & Finch",
    "zapshop", "Oddments", "the charity shop on Beck Street", "Northlight Outdoors", "Pixelbay", "Loom & Thread",
]
#: (item as bought, how it is asked about)
ITEMS: list[tuple[str, str]] = [
    ("a standing desk", "standing desk"), ("a cast-iron skillet", "cast-iron skillet"),
    ("noise-cancelling headphones", "noise-cancelling headphones"), ("a yoga mat", "yoga mat"),
    ("a second-hand record player", "record player"), ("a rice cooker", "rice cooker"),
    ("hiking boots", "hiking boots"), ("a monstera plant", "monstera plant"), ("a robot vacuum", "robot vacuum"),
    ("a winter coat", "winter coat"), ("a camping stove", "camping stove"), ("a bread maker", "bread maker"),
    ("an e-reader", "e-reader"), ("a kettlebell", "kettlebell"), ("a dehumidifier", "dehumidifier"),
    ("a desk lamp", "desk lamp"), ("a blender", "blender"), ("wireless earbuds", "wireless earbuds"),
    ("a pressure cooker", "pressure cooker"), ("a sewing machine", "sewing machine"),
    ("a rain jacket", "rain jacket"), ("an office chair", "office chair"), ("a hammock", "hammock"),
    ("a coffee grinder", "coffee grinder"),
]
#: (dish, ingredients, oven temperature or None, minutes)
DISHES: list[tuple[str, str, str | None, int]] = [
    ("jollof rice", "long-grain rice, tomatoes, scotch bonnet, thyme, stock", None, 45),
    ("shakshuka", "eggs, peppers, tinned tomatoes, cumin, feta", None, 25),
    ("dal makhani", "black lentils, kidney beans, butter, cream, garam masala", None, 90),
    ("lemon drizzle cake", "self-raising flour, lemons, caster sugar, butter, eggs", "180°C", 45),
    ("bibimbap", "rice, spinach, carrots, gochujang, fried egg", None, 35),
    ("moussaka", "aubergines, lamb mince, cinnamon, béchamel", "190°C", 50),
    ("chicken adobo", "chicken thighs, soy sauce, vinegar, garlic, bay leaves", None, 60),
    ("focaccia", "strong flour, olive oil, rosemary, sea salt", "220°C", 25),
    ("pierogi", "potatoes, farmer's cheese, onions, flour", None, 40),
    ("beef pho", "beef bones, star anise, rice noodles, ginger", None, 180),
    ("lamb tagine", "lamb shoulder, apricots, ras el hanout, chickpeas", "160°C", 150),
    ("carrot cake", "grated carrots, walnuts, cinnamon, cream cheese frosting", "170°C", 40),
    ("gyoza", "pork mince, cabbage, ginger, gyoza wrappers", None, 30),
    ("mac and cheese", "macaroni, mature cheddar, mustard, breadcrumbs", "200°C", 25),
    ("cardamom buns", "flour, cardamom, butter, pearl sugar", "200°C", 12),
    ("egusi soup", "ground melon seeds, spinach, palm oil, stockfish", None, 60),
    ("okonomiyaki", "cabbage, flour, eggs, spring onions, okonomi sauce", None, 20),
    ("enchiladas", "tortillas, black beans, salsa roja, cheese", "190°C", 30),
]
FOODS = [
    "coriander", "olives", "mushrooms", "blue cheese", "aubergine", "liquorice", "anchovies", "beetroot",
    "marzipan", "peanut butter", "raw onion", "oysters", "kimchi", "jackfruit", "okra", "durian", "capers",
    "goat's cheese",
]
GIFTS = [
    "a pottery class voucher", "a fountain pen", "a plant subscription", "vintage vinyl", "a good cookbook",
    "a star map print", "fancy hot sauces", "a weekend bag", "a silk scarf", "concert tickets", "a board game",
    "a cosy blanket", "a personalised mug", "a bonsai kit",
]
HOTELS = [
    "Hotel Miramar", "Casa Azul", "Pensão Flores", "the Kite Hotel", "Hostel Nomada", "Villa Serena",
    "the Copper Kettle B&B", "Ryokan Hanabi", "the Saltmeadow Inn", "Hotel Aurelio",
]
AIRLINES = ["TP", "LX", "KL", "AZ", "EI", "FR", "VY", "OS", "SN", "AY", "LO", "IB", "SK", "TK"]
WIFI_PREFIXES = ["TP-Link_", "BT-Hub6-", "NETGEAR-", "Vodafone-", "SKY-"]
FILMS = [
    "The Glass Orchard", "Night Ferry", "Salt and Static", "Murder at Wrenhall", "The Long Quiet",
    "Paper Lanterns", "Slow Horses", "The Cartographer's Daughter", "Deep Field", "Moonlight Laundromat",
]

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
